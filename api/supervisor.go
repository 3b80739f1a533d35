package api

import "github.com/gin-gonic/gin"

// supervisorRoutes are the supervisor's view (live queue, agents, SLA at risk), the metrics
// report, the Prometheus endpoint and the administration of groups, agents and canned replies.
func (s *Server) supervisorRoutes(r *gin.Engine) {}
