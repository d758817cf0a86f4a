package main

import "encoding/json"

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// appendJSONStringPrefix appends s as the start of a JSON string: the
// opening quote and the escaped content, without the closing quote.
func appendJSONStringPrefix(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q[:len(q)-1]...)
}
