// Package kefu holds what every part of Kefu shares: one error type and its codes.
//
// The parts of the product live in sub-packages: nlu understands a message, dialog runs the
// conversation, retrieval answers from the knowledge base, handoff routes people, and api is
// the only package that speaks HTTP and WebSocket. cmd/kefu wires them together.
package kefu

import (
	"errors"
	"fmt"
)

// Code classifies an error. It travels in JSON bodies and WebSocket frames, so it is a string,
// and codes are only ever added.
type Code string

const (
	Invalid      Code = "invalid"      // the request is malformed or breaks a rule
	NotFound     Code = "not_found"    // the thing asked for does not exist (or is not yours)
	Conflict     Code = "conflict"     // the request clashes with the current state
	TooLarge     Code = "too_large"    // the request is over a size limit
	Unauthorized Code = "unauthorized" // missing or bad credentials
	Forbidden    Code = "forbidden"    // authenticated, but the role may not do this
	RateLimited  Code = "rate_limited" // too many requests: slow down
	Unavailable  Code = "unavailable"  // temporary: retry later
	Internal     Code = "internal"     // a bug or an unexpected failure
)

// Error is an error with an operation, a code and a message that is safe to show to users.
type Error struct {
	Op      string // the operation that failed, "dialog.Turn"
	Code    Code   // empty: take the code of Err
	Message string // safe for users: no SQL, no secrets, no customer text
	Err     error  // the cause, for logs
}

func (e *Error) Error() string {
	s := e.Op
	if e.Code != "" {
		s += " [" + string(e.Code) + "]"
	}
	if e.Message != "" {
		s += " " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// E wraps err with an operation and a code; an empty code keeps the code of err.
func E(op string, code Code, err error) error { return &Error{Op: op, Code: code, Err: err} }

// Errorf makes an error whose message is shown to users.
func Errorf(op string, code Code, format string, args ...any) error {
	return &Error{Op: op, Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the first code in err's chain; anything unclassified is Internal.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	for errors.As(err, &e) {
		if e.Code != "" {
			return e.Code
		}
		if e.Err == nil {
			break
		}
		err = e.Err
	}
	return Internal
}

// MessageOf returns the first user-safe message in err's chain, or "" when there is none.
func MessageOf(err error) string {
	var e *Error
	for errors.As(err, &e) {
		if e.Message != "" {
			return e.Message
		}
		if e.Err == nil {
			break
		}
		err = e.Err
	}
	return ""
}
