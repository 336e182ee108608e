// Package admin serves the invoker's HTTP API on PORT, as upstream's DefaultInvokerServer:
// GET /ping → pong, GET /metrics (Prometheus), and behind basic auth POST /enable,
// POST /disable and GET /isEnabled → {"enabled":bool}.
package admin

import (
	"context"
	"crypto/subtle"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Switch is what /enable, /disable and /isEnabled act on (the health pinger).
type Switch interface {
	Enabled() bool
	// Enable reports whether the state changed.
	Enable() bool
	// Disable sends the disabled ping and reports whether the state changed.
	Disable(ctx context.Context) (bool, error)
}

// Config configures the handler.
type Config struct {
	// Name is the invoker's name in answers, e.g. "invoker0".
	Name               string
	Username, Password string
	Switch             Switch
	Registry           *prometheus.Registry
	Logger             *zap.Logger
}

// Handler returns the admin API.
func Handler(cfg Config) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	r.GET("/ping", func(c *gin.Context) { c.String(http.StatusOK, "pong") })
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})))

	auth := r.Group("/", func(c *gin.Context) {
		user, pass, ok := c.Request.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(cfg.Username)) != 1 ||
			subtle.ConstantTimeCompare([]byte(pass), []byte(cfg.Password)) != 1 {
			c.Header("WWW-Authenticate", `Basic realm="invoker"`)
			c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "The supplied authentication is invalid"})
			return
		}
		c.Next()
	})
	auth.POST("/enable", func(c *gin.Context) {
		if cfg.Switch.Enable() {
			log.Info("invoker enabled through the admin API")
			c.String(http.StatusOK, cfg.Name+" is now enabled.")
			return
		}
		c.String(http.StatusOK, cfg.Name+" is already enabled.")
	})
	auth.POST("/disable", func(c *gin.Context) {
		changed, err := cfg.Switch.Disable(c.Request.Context())
		if err != nil {
			log.Warn("disabled ping not sent", zap.Error(err))
		}
		if changed {
			log.Info("invoker disabled through the admin API")
			c.String(http.StatusOK, cfg.Name+" is now disabled.")
			return
		}
		c.String(http.StatusOK, cfg.Name+" is already disabled.")
	})
	auth.GET("/isEnabled", func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"enabled": cfg.Switch.Enabled()})
	})
	return r
}
