package api

import "github.com/gin-gonic/gin"

// deskRoutes are the agent console's REST routes besides the WebSocket: notes, canned
// replies, transfers, accepting, the knowledge search, tickets.
func (s *Server) deskRoutes(r *gin.Engine) {}
