package controller

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/store"
)

var activationIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func (s *Server) listActivations(c *gin.Context) {
	const coll = "activations"
	ns := namespaceOf(c)
	skip, limit, err := queryPage(c, coll)
	if err != nil {
		s.fail(c, err)
		return
	}
	count, docs := queryBool(c, "count"), queryBool(c, "docs")
	if count && docs {
		s.fail(c, badRequest(msgDocsWithCount))
		return
	}
	q := store.ActivationQuery{Skip: skip, Limit: limit}
	if name := c.Query("name"); name != "" {
		parts := strings.Split(strings.Trim(name, "/"), "/")
		if len(parts) > 2 {
			s.fail(c, badRequest(msgBadNameFilter(name)))
			return
		}
		for _, p := range parts {
			if !entityNamePattern.MatchString(p) {
				s.fail(c, badRequest(msgBadNameFilter(name)))
				return
			}
		}
		q.Name = strings.Join(parts, "/")
	}
	for _, b := range []struct {
		param string
		dst   *int64
	}{{"since", &q.Since}, {"upto", &q.Upto}} {
		if v := c.Query(b.param); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				s.fail(c, badRequest(msgBadEpoch(v)))
				return
			}
			*b.dst = n
		}
	}
	if count {
		q.Skip, q.Limit = skip, 1
		_, total, err := s.store.QueryActivations(ns, q)
		if err != nil {
			s.fail(c, internal(err))
			return
		}
		respond(c, http.StatusOK, map[string]int{"activations": max(0, total-skip)})
		return
	}
	found, _, err := s.store.QueryActivations(ns, q)
	if err != nil {
		s.fail(c, internal(err))
		return
	}
	out := make([]json.RawMessage, 0, len(found))
	for _, d := range found {
		a, err := activation.DecodeStoredActivation(d.JSON())
		if err != nil {
			continue // a record the invoker wrote that we cannot read is not listed
		}
		var row []byte
		if docs {
			row, err = a.ExtendedJSON()
		} else {
			row, err = activationSummary(&a.WhiskActivation)
		}
		if err == nil {
			out = append(out, row)
		}
	}
	respond(c, http.StatusOK, out)
}

// activationSummary is a list row (spec §1.7).
func activationSummary(a *activation.WhiskActivation) ([]byte, error) {
	type row struct {
		Namespace    string                  `json:"namespace"`
		Name         string                  `json:"name"`
		Version      string                  `json:"version"`
		Publish      bool                    `json:"publish"`
		Annotations  activation.Parameters   `json:"annotations"`
		ActivationID activation.ActivationID `json:"activationId"`
		Start        int64                   `json:"start"`
		End          int64                   `json:"end"`
		Duration     int64                   `json:"duration"`
		Cause        activation.ActivationID `json:"cause,omitempty"`
		StatusCode   int                     `json:"statusCode"`
	}
	ver := a.Version
	if ver.IsZero() {
		ver = activation.DefaultVersion
	}
	d := a.End - a.Start
	if a.Duration != nil {
		d = *a.Duration
	}
	if a.End == 0 {
		d = 0
	}
	ann := a.Annotations
	if ann == nil {
		ann = activation.Parameters{}
	}
	return json.Marshal(row{a.Namespace, a.Name, ver.String(), a.Publish, ann, a.ActivationID,
		a.Start, a.End, d, a.Cause, a.Response.StatusCode})
}

// loadActivation reads one activation of the caller's namespace by id.
func (s *Server) loadActivation(c *gin.Context) (*activation.WhiskActivation, error) {
	id := c.Param("id")
	if len(id) != 32 {
		return nil, badRequest(msgActivationIDLength(len(id)))
	}
	if !activationIDPattern.MatchString(id) {
		return nil, badRequest("The activation id is not valid.")
	}
	d, err := s.store.Activations.Get(namespaceOf(c) + "/" + id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, newAPIError(http.StatusNotFound, msgNotFound)
	}
	if err != nil {
		return nil, internal(err)
	}
	a, err := activation.DecodeStoredActivation(d.JSON())
	if err != nil {
		return nil, internal(err)
	}
	return &a.WhiskActivation, nil
}

func (s *Server) getActivation(c *gin.Context) {
	a, err := s.loadActivation(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	body, err := a.ExtendedJSON()
	if err != nil {
		s.fail(c, internal(err))
		return
	}
	respond(c, http.StatusOK, json.RawMessage(body))
}

func (s *Server) getActivationPart(c *gin.Context) {
	part := c.Param("part")
	if part != "logs" && part != "result" {
		s.fail(c, newAPIError(http.StatusNotFound, msgNoRoute))
		return
	}
	a, err := s.loadActivation(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if part == "logs" {
		logs := a.Logs
		if logs == nil {
			logs = []string{}
		}
		respond(c, http.StatusOK, map[string][]string{"logs": logs})
		return
	}
	body, err := a.ExtendedJSON()
	if err != nil {
		s.fail(c, internal(err))
		return
	}
	var ext struct {
		Response json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal(body, &ext); err != nil {
		s.fail(c, internal(err))
		return
	}
	respond(c, http.StatusOK, ext.Response)
}
