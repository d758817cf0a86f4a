package main

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
)

// Config is the connector's configuration (SPEC §11 postgres).
type Config struct {
	DSN    string                  `config:"dsn,required,sensitive" doc:"Connection string: postgres://user:password@host:5432/db?sslmode=require, or key=value pairs."`
	Tables map[string]*TableConfig `config:"tables,required" doc:"One entry per model: { table, id, updated_at }. Each model is a sync of the same name."`
	Listen string                  `config:"listen" doc:"Optional LISTEN channel: a NOTIFY on it asks the host for an incremental run (payload: a model or table name, or empty for every sync)."`
}

// TableConfig is one model's table.
type TableConfig struct {
	Table     string `config:"table,required" doc:"Table or view, optionally schema-qualified (public.customers)."`
	ID        string `config:"id" doc:"Column holding the row's id (default \"id\"); unique and not null."`
	UpdatedAt string `config:"updated_at" doc:"Column holding the row's last-modified time; enables incremental runs."`
}

var channelName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,62}$`)

// Validate is called by DecodeConfig.
func (c *Config) Validate() error {
	if len(c.Tables) == 0 {
		return errors.New("tables must name at least one model")
	}
	for _, name := range c.modelNames() {
		t := c.Tables[name]
		if t == nil || t.Table == "" {
			return fmt.Errorf("tables.%s.table must name a table", name)
		}
		if t.ID == "" {
			t.ID = "id"
		}
	}
	if c.Listen != "" && !channelName.MatchString(c.Listen) {
		return fmt.Errorf("listen %q must be a plain identifier (letters, digits, _), at most 63 characters", c.Listen)
	}
	return nil
}

func (c *Config) modelNames() []string {
	names := make([]string, 0, len(c.Tables))
	for n := range c.Tables {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
