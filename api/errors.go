package api

import (
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/kefu-dev/kefu"
)

// status maps an error code to an HTTP status, once for the whole API.
func status(code kefu.Code) int {
	switch code {
	case kefu.Invalid:
		return http.StatusBadRequest
	case kefu.Unauthorized:
		return http.StatusUnauthorized
	case kefu.Forbidden:
		return http.StatusForbidden
	case kefu.NotFound:
		return http.StatusNotFound
	case kefu.Conflict:
		return http.StatusConflict
	case kefu.TooLarge:
		return http.StatusRequestEntityTooLarge
	case kefu.RateLimited:
		return http.StatusTooManyRequests
	case kefu.Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// errorBody is what clients see of an error: its code and a user-safe message.
type errorBody struct {
	Code    kefu.Code `json:"code"`
	Message string    `json:"message"`
}

func describe(err error) errorBody {
	code := kefu.CodeOf(err)
	msg := kefu.MessageOf(err)
	if msg == "" || code == kefu.Internal {
		msg = http.StatusText(status(code))
	}
	return errorBody{Code: code, Message: msg}
}

// fail writes {"error":{code,message}} and logs the whole chain for internal and unavailable
// errors only.
func (s *Server) fail(c *gin.Context, err error) {
	b := describe(err)
	if b.Code == kefu.Internal || b.Code == kefu.Unavailable {
		s.log.ErrorContext(c.Request.Context(), "request failed", "route", c.FullPath(), "err", err)
	}
	c.AbortWithStatusJSON(status(b.Code), gin.H{"error": b})
}

func (s *Server) logRequests() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		// The route, not the URL: query strings may hold tokens.
		level := slog.LevelDebug
		if c.Writer.Status() >= 500 {
			level = slog.LevelWarn
		}
		s.log.Log(c.Request.Context(), level, "http request", "method", c.Request.Method, "route", c.FullPath(), "status", c.Writer.Status())
	}
}
