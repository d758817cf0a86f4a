package postgres

// The driver's types become the store's interfaces (store.Store's Layer
// method, and the assertions that *Layer, *Snapshot, *Staging and
// *StageWriter implement theirs) once the records and system halves are
// both in: see records*.go and system*.go.
