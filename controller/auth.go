package controller

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/snapinvoker/snapinvoker/store"
)

// Standard keys of OpenWhisk standalone (standalone.conf whisk.users), as uuid:key.
const (
	GuestKey       = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
	WhiskSystemKey = "789c46b1-71f6-4ed5-8c54-816aa4f8c502:abczO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
)

// DefaultUsers are the subjects standalone creates unless configured otherwise.
func DefaultUsers() map[string]string {
	return map[string]string{"guest": GuestKey, "whisk.system": WhiskSystemKey}
}

// ErrBadUser: a configured user has an invalid name or key.
var ErrBadUser = errors.New("invalid user")

var (
	uuidPattern   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	secretPattern = regexp.MustCompile(`^[0-9a-zA-Z]{64}$`)
	// entityNamePattern is OpenWhisk's rule for entity and namespace names.
	entityNamePattern = regexp.MustCompile(`^([\w]|[\w][\w@ .-]*[\w@.-]+)$`)
)

// Identity is the authenticated caller.
type Identity struct {
	Subject   string
	Namespace string
	UUID      string
	Key       string // the secret half
}

// APIKey is "uuid:key".
func (id Identity) APIKey() string { return id.UUID + ":" + id.Key }

// subjectDoc is an auth record in the subjects database, shaped like OpenWhisk's WhiskAuth.
type subjectDoc struct {
	Subject    string `json:"subject"`
	Namespaces []struct {
		Name string `json:"name"`
		UUID string `json:"uuid"`
		Key  string `json:"key"`
	} `json:"namespaces"`
}

// authenticator resolves API keys to identities from the subjects database.
type authenticator struct {
	mu     sync.RWMutex
	byUUID map[string]Identity
}

// ParseUsers reads a users file: {"users": {"name": "uuid:key", …}}, the shape of
// standalone.conf's whisk.users.
func ParseUsers(data []byte) (map[string]string, error) {
	var f struct {
		Users map[string]string `json:"users"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("users file: %w: %v", ErrBadUser, err)
	}
	for name, key := range f.Users {
		if err := checkUser(name, key); err != nil {
			return nil, err
		}
	}
	return f.Users, nil
}

func checkUser(name, key string) error {
	if !entityNamePattern.MatchString(name) || len(name) < 5 && name != "guest" {
		return fmt.Errorf("user %q: the name must be an OpenWhisk entity name of at least 5 characters: %w", name, ErrBadUser)
	}
	uuid, secret, ok := strings.Cut(key, ":")
	if !ok || !uuidPattern.MatchString(uuid) || !secretPattern.MatchString(secret) {
		return fmt.Errorf("user %q: the key must be <uuid>:<64 alphanumeric characters>: %w", name, ErrBadUser)
	}
	return nil
}

func newAuthenticator(st *store.Store, users map[string]string) (*authenticator, error) {
	names := make([]string, 0, len(users))
	for n := range users {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		key := users[name]
		if err := checkUser(name, key); err != nil {
			return nil, err
		}
		uuid, secret, _ := strings.Cut(key, ":")
		doc := subjectDoc{Subject: name}
		doc.Namespaces = append(doc.Namespaces, struct {
			Name string `json:"name"`
			UUID string `json:"uuid"`
			Key  string `json:"key"`
		}{name, uuid, secret})
		body, _ := json.Marshal(doc)
		rev := ""
		if cur, err := st.Subjects.Get(name); err == nil {
			if string(cur.Body) == string(body) {
				continue
			}
			rev = cur.Rev // the configuration wins over a stale record
		}
		if _, err := st.Subjects.Put(name, rev, body); err != nil {
			return nil, fmt.Errorf("controller: bootstrap user %q: %w", name, err)
		}
	}
	a := &authenticator{byUUID: map[string]Identity{}}
	err := st.Subjects.Scan("", func(d store.Doc) bool {
		var sd subjectDoc
		if json.Unmarshal(d.Body, &sd) != nil {
			return true
		}
		for _, ns := range sd.Namespaces {
			a.byUUID[strings.ToLower(ns.UUID)] = Identity{Subject: sd.Subject, Namespace: ns.Name, UUID: ns.UUID, Key: ns.Key}
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("controller: load subjects: %w", err)
	}
	return a, nil
}

// lookup checks a "uuid:key" pair.
func (a *authenticator) lookup(uuid, key string) (Identity, bool) {
	if !uuidPattern.MatchString(uuid) {
		return Identity{}, false
	}
	a.mu.RLock()
	id, ok := a.byUUID[strings.ToLower(uuid)]
	a.mu.RUnlock()
	if !ok || subtle.ConstantTimeCompare([]byte(id.Key), []byte(key)) != 1 {
		return Identity{}, false
	}
	return id, true
}

const identityKey = "snapinvoker.identity"

func identityOf(c *gin.Context) Identity {
	v, _ := c.Get(identityKey)
	id, _ := v.(Identity)
	return id
}

// authenticate checks HTTP Basic credentials (user = uuid, password = key).
func (s *Server) authenticate(c *gin.Context) {
	h := c.GetHeader("Authorization")
	if h == "" {
		s.fail(c, newAPIError(http.StatusUnauthorized, msgAuthMissing))
		return
	}
	scheme, cred, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Basic") {
		s.fail(c, newAPIError(http.StatusUnauthorized, msgAuthInvalid))
		return
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		s.fail(c, newAPIError(http.StatusUnauthorized, msgAuthInvalid))
		return
	}
	uuid, key, _ := strings.Cut(string(raw), ":")
	id, ok := s.auth.lookup(uuid, key)
	if !ok {
		s.fail(c, newAPIError(http.StatusUnauthorized, msgAuthInvalid))
		return
	}
	c.Set(identityKey, id)
	c.Next()
}

const namespaceKey = "snapinvoker.namespace"

// authorizeNamespace resolves "_" to the caller's namespace and refuses every other
// namespace but the caller's own: one namespace never sees another's entities.
func (s *Server) authorizeNamespace(c *gin.Context) {
	id := identityOf(c)
	ns := c.Param("ns")
	if ns == "_" {
		ns = id.Namespace
	}
	if ns != id.Namespace {
		s.fail(c, newAPIError(http.StatusForbidden, msgNotAuthorized))
		return
	}
	c.Set(namespaceKey, ns)
	c.Next()
}

func namespaceOf(c *gin.Context) string { return c.GetString(namespaceKey) }
