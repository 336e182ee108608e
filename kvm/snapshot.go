package kvm

// Snapshot is a guest frozen in a blocking stdin read, opened for restoring.
type Snapshot struct{}
