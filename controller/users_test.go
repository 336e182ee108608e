package controller

import (
	"errors"
	"testing"
)

func TestParseUsers(t *testing.T) {
	good := `{"users": {"alice.dev": "` + otherKey + `", "guest": "` + GuestKey + `"}}`
	u, err := ParseUsers([]byte(good))
	if err != nil || len(u) != 2 || u["alice.dev"] != otherKey {
		t.Fatalf("ParseUsers(good) = %v, %v", u, err)
	}
	for _, bad := range []string{
		`{"users": {"bob": "` + otherKey + `"}}`,                                 // name shorter than 5
		`{"users": {"alice.dev": "not-a-key"}}`,                                  // no uuid:key
		`{"users": {"alice.dev": "11111111-2222-4333-8444-555555555555:short"}}`, // key not 64 characters
		`{"users": {"bad name!": "` + otherKey + `"}}`,                           // illegal characters
		`{"users": ["x"]}`,
		`not json`,
	} {
		if _, err := ParseUsers([]byte(bad)); !errors.Is(err, ErrBadUser) {
			t.Errorf("ParseUsers(%s): %v, want ErrBadUser", bad, err)
		}
	}
}
