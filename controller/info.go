package controller

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/snapinvoker/snapinvoker/store"
)

func (s *Server) getRoot(c *gin.Context) {
	L := s.limits
	respond(c, http.StatusOK, map[string]any{
		"description": "OpenWhisk",
		"support": map[string]string{
			"github": "/snapinvoker/snapinvoker/issues",
		},
		"api_paths": []string{"/api/v1"},
		"limits": map[string]any{
			"actions_per_minute":  60,
			"concurrent_actions":  30,
			"triggers_per_minute": 60,
			"sequence_length":     L.MaxSequence,
			"min_action_duration": L.MinTimeoutMs,
			"max_action_duration": L.MaxTimeoutMs,
			"min_action_memory":   int64(L.MinMemoryMB) << 20,
			"max_action_memory":   int64(L.MaxMemoryMB) << 20,
			"min_action_logs":     int64(L.MinLogsMB) << 20,
			"max_action_logs":     int64(L.MaxLogsMB) << 20,
		},
		"runtimes": s.cfg.Manifest.runtimesByFamily(),
	})
}

func (s *Server) getAPIInfo(c *gin.Context) {
	build := s.cfg.Build
	if build == "" {
		build = "snapinvoker"
	}
	respond(c, http.StatusOK, map[string]any{
		"description":      "OpenWhisk API",
		"api_version":      "1.0.0",
		"api_version_path": "v1",
		"build":            build,
		"buildno":          build,
		"swagger_paths":    map[string]string{"ui": "/docs", "api-docs": "/api-docs"},
	})
}

func (s *Server) invokers() []InvokerStatus {
	if s.lb == nil {
		return nil
	}
	return s.lb.Invokers()
}

func (s *Server) getInvokers(c *gin.Context) {
	out := map[string]string{}
	for _, inv := range s.invokers() {
		st := "down"
		if inv.Healthy {
			st = "up"
		}
		out[inv.Name] = st
	}
	respond(c, http.StatusOK, out)
}

func (s *Server) getHealthyCount(c *gin.Context) {
	n := 0
	for _, inv := range s.invokers() {
		if inv.Healthy {
			n++
		}
	}
	respond(c, http.StatusOK, json.RawMessage(fmt.Sprint(n)))
}

func (s *Server) getInvokersReady(c *gin.Context) {
	all := s.invokers()
	n := 0
	for _, inv := range all {
		if inv.Healthy {
			n++
		}
	}
	if len(all) > 0 && n == len(all) {
		respond(c, http.StatusOK, map[string]string{"healthy": fmt.Sprintf("%d/%d", n, len(all))})
		return
	}
	respond(c, http.StatusInternalServerError, map[string]string{"unhealthy": fmt.Sprintf("%d/%d", len(all)-n, len(all))})
}

func (s *Server) listNamespaces(c *gin.Context) {
	respond(c, http.StatusOK, []string{identityOf(c).Namespace})
}

// getNamespace lists the namespace's entities by collection (GET /namespaces/{ns}).
func (s *Server) getNamespace(c *gin.Context) {
	ns := namespaceOf(c)
	actions := []map[string]any{}
	err := s.store.Whisks.Scan(ns+"/", func(d store.Doc) bool {
		if strings.Contains(strings.TrimPrefix(d.ID, ns+"/"), "/") {
			return true
		}
		var a actionDoc
		if json.Unmarshal(d.Body, &a) == nil && (a.EntityType == "" || a.EntityType == "action") {
			actions = append(actions, a.summary())
		}
		return true
	})
	if err != nil {
		s.fail(c, internal(err))
		return
	}
	respond(c, http.StatusOK, map[string]any{"actions": actions, "packages": []any{}, "triggers": []any{}, "rules": []any{}})
}

func (s *Server) getNamespaceLimits(c *gin.Context) {
	respond(c, http.StatusOK, map[string]any{
		"invocationsPerMinute": 60, "concurrentInvocations": 30, "firesPerMinute": 60,
		"minActionMemory": int64(s.limits.MinMemoryMB) << 20, "maxActionMemory": int64(s.limits.MaxMemoryMB) << 20,
		"minActionLogs": int64(s.limits.MinLogsMB) << 20, "maxActionLogs": int64(s.limits.MaxLogsMB) << 20,
		"minActionTimeout": s.limits.MinTimeoutMs, "maxActionTimeout": s.limits.MaxTimeoutMs,
		"minActionConcurrency": s.limits.MinConcurrency, "maxActionConcurrency": s.limits.MaxConcurrency,
		"maxParameterSize": "1 MB", "maxPayloadSize": "1 MB", "truncationSize": "1 MB",
	})
}
