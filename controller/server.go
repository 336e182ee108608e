// Package controller is the lean OpenWhisk controller of `snapinvoker standalone`: the REST API
// subset that `wsk` and the OpenWhisk clients use (actions, invoke, activations, namespaces),
// HTTP Basic authentication against the subjects database, and a lean load balancer that
// publishes ActivationMessages to the invoker's Kafka topic and waits for its acknowledgements
// on completed<N>. It is used only in standalone mode; in a cluster the upstream controller
// talks to the invoker.
package controller

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/snapinvoker/snapinvoker/store"
)

// Limits are the system's action limits and list bounds (spec §1.3, protocol §5).
type Limits struct {
	MinMemoryMB, MaxMemoryMB, StdMemoryMB  int
	MinTimeoutMs, MaxTimeoutMs, StdTimeout int
	MinLogsMB, MaxLogsMB, StdLogsMB        int
	MinConcurrency, MaxConcurrency         int
	// MaxPayload bounds an invoke's parameters (payload.max, 1 MiB).
	MaxPayload int64
	// MaxCodeSize bounds an action's PUT body (exec code, 48 MB upstream).
	MaxCodeSize int64
	// MaxSequence is the number of atomic actions a sequence may contain (50).
	MaxSequence int
	// MaxWait caps and defaults the blocking-invoke wait (60 s).
	MaxWait time.Duration
}

// DefaultLimits are OpenWhisk's defaults.
func DefaultLimits() Limits {
	return Limits{
		MinMemoryMB: 128, MaxMemoryMB: 512, StdMemoryMB: 256,
		MinTimeoutMs: 100, MaxTimeoutMs: 300000, StdTimeout: 60000,
		MinLogsMB: 0, MaxLogsMB: 10, StdLogsMB: 10,
		MinConcurrency: 1, MaxConcurrency: 1,
		MaxPayload:  1 << 20,
		MaxCodeSize: 48 << 20,
		MaxSequence: 50,
		MaxWait:     60 * time.Second,
	}
}

// Config is what a Server needs.
type Config struct {
	Store *store.Store
	// Manifest lists the kinds actions may have; exec kinds are validated against it.
	Manifest *Manifest
	// Balancer sends activations to the invoker and reports their completion.
	Balancer Balancer
	// Users are created in the subjects database at start (name → "uuid:key") if missing.
	Users  map[string]string
	Limits Limits
	Logger *zap.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// BuildInfo is shown by GET /api/v1.
	Build string
}

// Server serves the REST API. Create it with New; serve Handler.
type Server struct {
	cfg    Config
	store  *store.Store
	lb     Balancer
	auth   *authenticator
	log    *zap.Logger
	now    func() time.Time
	engine *gin.Engine
	limits Limits

	cacheMu     sync.Mutex
	actionCache map[string]cachedAction
}

// New builds the server and bootstraps the configured users.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits()
	}
	if cfg.Manifest == nil {
		m, err := DefaultManifest()
		if err != nil {
			return nil, err
		}
		cfg.Manifest = m
	}
	s := &Server{cfg: cfg, store: cfg.Store, lb: cfg.Balancer, log: cfg.Logger, now: cfg.Now, limits: cfg.Limits,
		actionCache: map[string]cachedAction{}}
	auth, err := newAuthenticator(cfg.Store, cfg.Users)
	if err != nil {
		return nil, err
	}
	s.auth = auth
	s.engine = s.routes()
	return s, nil
}

// Handler is the HTTP handler of the API.
func (s *Server) Handler() http.Handler { return s.engine }

// tx is the transaction of one request: its id (X-Request-ID) and start.
type tx struct {
	ID    string
	Start time.Time
}

func (t tx) fields() []zap.Field {
	return []zap.Field{zap.String("tid", t.ID)}
}

func zapStatus(s int) zap.Field  { return zap.Int("status", s) }
func zapErr(err error) zap.Field { return zap.Error(err) }

const txKey = "snapinvoker.tx"

func txOf(c *gin.Context) tx {
	if v, ok := c.Get(txKey); ok {
		return v.(tx)
	}
	return tx{ID: "sid_unknown"}
}

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newTransactionID returns 32 random alphanumeric characters, as OpenWhisk generates them.
func newTransactionID() string {
	var b [32]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b[:])
}

// transaction assigns the request its transaction id: an incoming X-Request-ID is kept unless
// it names a system transaction (sid_…), which callers may not forge.
func (s *Server) transaction(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if id == "" || strings.HasPrefix(id, "sid_") || len(id) > 256 {
		id = newTransactionID()
	}
	c.Set(txKey, tx{ID: id, Start: s.now()})
	c.Header("X-Request-ID", id)
	c.Next()
}

// cors adds the CORS headers OpenWhisk sends on /api/v1 routes and answers preflights.
func cors(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, DELETE, POST, PUT, HEAD")
	h.Set("Access-Control-Allow-Headers", "Authorization, Origin, X-Requested-With, Content-Type, Accept, User-Agent")
	if c.Request.Method == http.MethodOptions {
		c.AbortWithStatus(http.StatusOK)
		return
	}
	c.Next()
}

// recoverer turns a panic in a handler into a 500 envelope instead of a dropped connection.
func (s *Server) recoverer(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("handler panic", append(txOf(c).fields(), zap.Any("panic", r), zap.Stack("stack"))...)
			if !c.Writer.Written() {
				s.fail(c, internal(nil))
			}
		}
	}()
	c.Next()
}

// respond writes v as JSON without HTML escaping (action code keeps its < and &).
func respond(c *gin.Context, status int, v any) {
	var body []byte
	switch b := v.(type) {
	case json.RawMessage:
		body = b
	case []byte:
		body = b
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			body = []byte(`{}`)
		} else {
			body = bytes.TrimRight(buf.Bytes(), "\n")
		}
	}
	c.Data(status, "application/json", body)
}

func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = false
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.UseRawPath = true
	e.UnescapePathValues = true
	e.Use(s.recoverer, s.transaction)
	e.NoRoute(func(c *gin.Context) { s.fail(c, newAPIError(http.StatusNotFound, msgNoRoute)) })

	e.GET("/", s.getRoot)
	e.GET("/ping", func(c *gin.Context) { c.String(http.StatusOK, "pong") })
	e.GET("/invokers", s.getInvokers)
	e.GET("/invokers/healthy/count", s.getHealthyCount)
	e.GET("/invokers/ready", s.getInvokersReady)

	api := e.Group("/api/v1", cors)
	api.OPTIONS("/*any", func(c *gin.Context) {})
	api.GET("", s.getAPIInfo)
	api.GET("/", s.getAPIInfo)

	authed := api.Group("", s.authenticate)
	authed.GET("/namespaces", s.listNamespaces)
	ns := authed.Group("/namespaces/:ns", s.authorizeNamespace)
	ns.GET("", s.getNamespace)
	ns.GET("/limits", s.getNamespaceLimits)
	ns.GET("/actions", s.listActions)
	ns.GET("/actions/*name", s.getAction)
	ns.PUT("/actions/*name", s.putAction)
	ns.DELETE("/actions/*name", s.deleteAction)
	ns.POST("/actions/*name", s.invokeAction)
	ns.GET("/activations", s.listActivations)
	ns.GET("/activations/:id", s.getActivation)
	ns.GET("/activations/:id/:part", s.getActivationPart)
	// Collections standalone does not implement: empty lists and "does not exist", so that
	// `wsk list` and friends work.
	for _, coll := range []string{"packages", "triggers", "rules"} {
		ns.GET("/"+coll, func(c *gin.Context) { respond(c, http.StatusOK, json.RawMessage(`[]`)) })
		ns.GET("/"+coll+"/*name", func(c *gin.Context) { s.fail(c, newAPIError(http.StatusNotFound, msgNotFound)) })
	}
	return e
}

// queryInt reads an integer query parameter for collection, within [0, max] when max > 0.
func queryInt(c *gin.Context, name, collection string, def, max int) (int, error) {
	v, ok := c.GetQuery(name)
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, badRequest(msgNotInteger(collection, v))
	}
	if name == "skip" && n < 0 {
		return 0, badRequest(msgListSkip(collection, n))
	}
	if max > 0 && (n < 0 || n > max) {
		return 0, badRequest(msgListLimit(collection, n, max))
	}
	return n, nil
}

// queryPage reads a list's skip (default 0) and limit (default 30, at most 200; 0 means 200)
// for collection.
func queryPage(c *gin.Context, collection string) (skip, limit int, err error) {
	if skip, err = queryInt(c, "skip", collection, 0, 0); err != nil {
		return 0, 0, err
	}
	if limit, err = queryInt(c, "limit", collection, 30, 200); err != nil {
		return 0, 0, err
	}
	if limit == 0 {
		limit = 200
	}
	return skip, limit, nil
}

// queryBool reads a boolean query parameter; anything but "true" is false, as spray does for
// the values wsk sends.
func queryBool(c *gin.Context, name string) bool {
	return strings.EqualFold(c.Query(name), "true")
}
