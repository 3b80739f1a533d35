package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/kefu-dev/kefu"
	"github.com/kefu-dev/kefu/handoff"
	"github.com/kefu-dev/kefu/retrieval"
)

// Import limits: a file over this is refused before it is read.
const maxImportBody = 64 << 20

// editorRoutes are the knowledge editor's API: every route needs an editor's (or admin's)
// login, and every change is audited under the account's e-mail.
func (s *Server) editorRoutes(r *gin.Engine) {
	kb := r.Group("/api/kb", s.agentAuth, s.requireRole(handoff.RoleEditor))
	small := limitBody(6 << 20) // a document is at most 5 MiB
	kb.GET("/entries", s.kbList)
	kb.GET("/entries/:key/:lang", s.kbHistory)
	kb.PUT("/entries/:key/:lang/draft", small, s.kbSaveDraft)
	kb.DELETE("/entries/:key/:lang/draft", s.kbDiscard)
	kb.POST("/entries/:key/:lang/publish", s.kbPublish)
	kb.POST("/entries/:key/:lang/rollback", small, s.kbRollback)
	kb.POST("/entries/:key/:lang/archive", s.kbArchive)
	kb.GET("/entries/:key/:lang/diff", s.kbDiff)
	kb.POST("/try", small, s.kbTry)
	kb.GET("/gaps", s.kbGaps)
	kb.POST("/gaps/close", small, s.kbCloseGap)
	kb.GET("/audit", s.kbAudit)
	kb.GET("/status", s.kbStatus)
	kb.POST("/import", limitBody(maxImportBody), s.kbImport)
}

// requireRole lets through accounts that hold one of roles (admins hold every role).
func (s *Server) requireRole(roles ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		ag := c.MustGet("agent").(handoff.Agent)
		if !ag.HasRole(roles...) {
			s.fail(c, kefu.Errorf("api.requireRole", kefu.Forbidden, "this needs the %s role", strings.Join(roles, " or ")))
			return
		}
		c.Next()
	}
}

// actor names the logged-in account in the audit trail.
func actor(c *gin.Context) string { return c.MustGet("agent").(handoff.Agent).Email }

func queryInt(c *gin.Context, name string) (int, error) {
	v := c.Query(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, kefu.Errorf("api", kefu.Invalid, "%s must be a whole number", name)
	}
	return n, nil
}

func (s *Server) kbList(c *gin.Context) {
	limit, err1 := queryInt(c, "limit")
	offset, err2 := queryInt(c, "offset")
	if err := errors.Join(err1, err2); err != nil {
		s.fail(c, err)
		return
	}
	list, total, err := s.KB.List(c.Request.Context(), retrieval.ListOptions{Query: c.Query("q"), Language: c.Query("language"),
		Tag: c.Query("tag"), Kind: c.Query("kind"), State: c.Query("state"), Limit: limit, Offset: offset})
	if err != nil {
		s.fail(c, err)
		return
	}
	if list == nil {
		list = []retrieval.Summary{}
	}
	c.JSON(http.StatusOK, gin.H{"entries": list, "total": total})
}

func (s *Server) kbHistory(c *gin.Context) {
	revs, err := s.KB.History(c.Request.Context(), c.Param("key"), c.Param("lang"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"revisions": revs})
}

func (s *Server) kbSaveDraft(c *gin.Context) {
	var d retrieval.Draft
	if err := bindJSON(c, &d); err != nil {
		s.fail(c, err)
		return
	}
	if (d.Key != "" && d.Key != c.Param("key")) || (d.Language != "" && d.Language != c.Param("lang")) {
		s.fail(c, kefu.Errorf("api.kbSaveDraft", kefu.Invalid, "the body's key and language must match the address"))
		return
	}
	d.Key, d.Language = c.Param("key"), c.Param("lang")
	rev, err := s.KB.SaveDraft(c.Request.Context(), actor(c), d)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, rev)
}

func (s *Server) kbDiscard(c *gin.Context) {
	if err := s.KB.Discard(c.Request.Context(), actor(c), c.Param("key"), c.Param("lang")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) kbPublish(c *gin.Context) {
	rev, err := s.KB.Publish(c.Request.Context(), actor(c), c.Param("key"), c.Param("lang"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, rev)
}

func (s *Server) kbRollback(c *gin.Context) {
	var body struct {
		Version int `json:"version"`
	}
	if err := bindJSON(c, &body); err != nil {
		s.fail(c, err)
		return
	}
	rev, err := s.KB.Rollback(c.Request.Context(), actor(c), c.Param("key"), c.Param("lang"), body.Version)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, rev)
}

func (s *Server) kbArchive(c *gin.Context) {
	if err := s.KB.Archive(c.Request.Context(), actor(c), c.Param("key"), c.Param("lang")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) kbDiff(c *gin.Context) {
	from, err1 := queryInt(c, "from")
	to, err2 := queryInt(c, "to")
	if err := errors.Join(err1, err2); err != nil {
		s.fail(c, err)
		return
	}
	d, err := s.KB.Diff(c.Request.Context(), c.Param("key"), c.Param("lang"), from, to)
	if err != nil {
		s.fail(c, err)
		return
	}
	if d == nil {
		d = []retrieval.FieldDiff{}
	}
	c.JSON(http.StatusOK, gin.H{"from": from, "to": to, "fields": d})
}

func (s *Server) kbTry(c *gin.Context) {
	var body struct {
		Question string `json:"question"`
		Language string `json:"language"`
		DraftKey string `json:"draft_key"`
	}
	if err := bindJSON(c, &body); err != nil {
		s.fail(c, err)
		return
	}
	if body.Language == "" {
		body.Language = "zh"
	}
	t, err := s.KB.Try(c.Request.Context(), body.Question, body.Language, body.DraftKey)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, t)
}

func (s *Server) kbGaps(c *gin.Context) {
	days, err := queryInt(c, "days")
	if err != nil {
		s.fail(c, err)
		return
	}
	gaps, err := s.KB.Gaps(c.Request.Context(), days, 100)
	if err != nil {
		s.fail(c, err)
		return
	}
	if gaps == nil {
		gaps = []retrieval.Gap{}
	}
	c.JSON(http.StatusOK, gin.H{"gaps": gaps})
}

func (s *Server) kbCloseGap(c *gin.Context) {
	var body struct {
		IDs    []int64 `json:"ids"`
		Action string  `json:"action"`
	}
	if err := bindJSON(c, &body); err != nil {
		s.fail(c, err)
		return
	}
	if err := s.KB.CloseGap(c.Request.Context(), actor(c), body.IDs, body.Action); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// kbStatus is the embedder the knowledge base is searched with, and a change of embedder in
// progress.
func (s *Server) kbStatus(c *gin.Context) {
	n, err := s.KB.Count(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"embedder": s.KB.EmbedderID(), "entries": n, "reembedding": s.KB.Reembedding()})
}

func (s *Server) kbAudit(c *gin.Context) {
	limit, err := queryInt(c, "limit")
	if err != nil {
		s.fail(c, err)
		return
	}
	list, err := s.KB.Audit(c.Request.Context(), c.Query("key"), limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	if list == nil {
		list = []retrieval.AuditRecord{}
	}
	c.JSON(http.StatusOK, gin.H{"audit": list})
}

// kbImport imports an FAQ file (the body, or a multipart "file"): ?format=jsonl|csv (else
// from the file name), ?language= for rows without one. The reply is a stream of JSON lines:
// {"stage","done","total"} as it goes, then {"imported":n} or {"errors":[{line,message}]}. A
// file with any bad row imports nothing.
func (s *Server) kbImport(c *gin.Context) {
	const op = "api.kbImport"
	name := c.Query("filename")
	var body io.Reader = c.Request.Body
	if strings.HasPrefix(c.ContentType(), "multipart/") {
		fh, err := c.FormFile("file")
		if err != nil {
			s.fail(c, kefu.Errorf(op, kefu.Invalid, "send the file as the multipart field \"file\""))
			return
		}
		f, err := fh.Open()
		if err != nil {
			s.fail(c, kefu.E(op, kefu.Internal, err))
			return
		}
		defer f.Close()
		body, name = f, fh.Filename
	}
	data, err := io.ReadAll(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(c, kefu.Errorf(op, kefu.TooLarge, "the file is larger than %d bytes", tooBig.Limit))
			return
		}
		s.fail(c, kefu.E(op, kefu.Invalid, err))
		return
	}
	format := c.Query("format")
	if format == "" {
		format = strings.TrimPrefix(strings.ToLower(filepath.Ext(name)), ".")
		if format == "json" || format == "ndjson" {
			format = "jsonl"
		}
	}
	if format != "jsonl" && format != "csv" {
		s.fail(c, kefu.Errorf(op, kefu.Invalid, "format must be jsonl or csv (give ?format= or a file name ending in .jsonl or .csv)"))
		return
	}
	lang := c.DefaultQuery("language", "zh")
	entries, rowErrs := retrieval.ParseImport(bytes.NewReader(data), format, lang)
	c.Header("Content-Type", "application/x-ndjson")
	c.Status(http.StatusOK)
	enc := json.NewEncoder(c.Writer)
	send := func(v any) {
		_ = enc.Encode(v)
		c.Writer.Flush()
	}
	if len(rowErrs) > 0 {
		if len(rowErrs) > 1000 {
			rowErrs = rowErrs[:1000]
		}
		list := make([]gin.H, len(rowErrs))
		for i, e := range rowErrs {
			list[i] = gin.H{"line": e.Line, "message": e.Message}
		}
		send(gin.H{"errors": list, "imported": 0})
		return
	}
	if len(entries) == 0 {
		send(gin.H{"errors": []gin.H{{"line": 1, "message": "the file has no entries"}}, "imported": 0})
		return
	}
	send(gin.H{"stage": "store", "done": 0, "total": len(entries)})
	err = s.KB.Import(c.Request.Context(), actor(c), entries, func(n int) {
		send(gin.H{"stage": "store", "done": n, "total": len(entries)})
	})
	if err != nil {
		b := describe(err)
		s.log.ErrorContext(c.Request.Context(), "import failed", "err", err)
		send(gin.H{"error": b, "imported": 0})
		return
	}
	send(gin.H{"imported": len(entries)})
}
