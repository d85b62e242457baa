package app

import (
	"net/http"

	"github.com/gofiber/fiber/v2"
)

// serveMetrics is GET /metrics on the main listener: the Prometheus
// exposition, for the bearer of METRICS_TOKEN. Without METRICS_TOKEN it
// does not exist (404); METRICS_ADDR serves it on a listener of its own.
func (s *Server) serveMetrics(c *fiber.Ctx) error {
	if s.cfg.MetricsToken == "" {
		return fiber.ErrNotFound
	}
	if !bearerIn(c, []string{s.cfg.MetricsToken}) {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="metrics"`)
		return &Error{Status: http.StatusUnauthorized, Detail: "Not authenticated"}
	}
	return s.metricsHandler(c)
}

// MetricsHandler serves the exposition over net/http (METRICS_ADDR).
func (s *Server) MetricsHandler() http.Handler { return s.metrics.Handler() }
