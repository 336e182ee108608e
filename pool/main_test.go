package pool_test

import (
	"os"
	"testing"
)

var sampleDir string

func mkdirTemp() (string, error) {
	dir, err := os.MkdirTemp("", "pooltest-")
	sampleDir = dir
	return dir, err
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sampleDir != "" {
		os.RemoveAll(sampleDir)
	}
	os.Exit(code)
}
