// Package api is the only part of Kefu that speaks HTTP and WebSocket: the REST routes (gin),
// the customer and agent WebSocket endpoints (gorilla/websocket), the fan-out of messages to
// connections, and the web pages (chat widget and agent console).
//
// # WebSocket protocol
//
// Frames are JSON text messages with a "type". A connection first sends "hello" (customers:
// session_id, token and the last seq they have; agents: their login token); before that every
// other frame gets an "error" with code "unauthorized". Errors carry the same codes as the REST
// API ({"type":"error","code":"invalid","message":"…"}) and never close the connection; a frame
// over 64 KiB closes it with 1009. Close codes 4000–4999 are Kefu's (see closeReason).
package api
