package mx

import (
	"testing"

	"github.com/mayfly-mail/mayfly/storage"
	"github.com/mayfly-mail/mayfly/storage/memstore"
)

// stores lists the stores an end-to-end test runs on.
func stores(t *testing.T) map[string]func(t *testing.T) storage.Store {
	return map[string]func(t *testing.T) storage.Store{
		"memory": func(t *testing.T) storage.Store {
			st := memstore.New(memstore.Options{})
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
}
