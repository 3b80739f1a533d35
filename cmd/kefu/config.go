package main

import (
	"flag"
	"os"
	"strconv"
	"time"
)

// Config is everything kefu serve can be told. Each field has a flag and an environment
// variable; the flag wins. The README's configuration table lists them.
type Config struct {
	Addr          string        // -addr, KEFU_ADDR
	DatabaseURL   string        // -database-url, DATABASE_URL; empty: the private cluster
	PGDir         string        // -pg-dir, KEFU_PG_DIR
	ORTLib        string        // -onnxruntime-lib, ONNXRUNTIME_LIB
	ModelDir      string        // -model, KEFU_MODEL_DIR
	Demo          bool          // -demo, KEFU_DEMO
	KBThreshold   float64       // -kb-threshold, KEFU_KB_THRESHOLD
	EscalateAfter int           // -escalate-after, KEFU_ESCALATE_AFTER
	RouteInterval time.Duration // -route-interval, KEFU_ROUTE_INTERVAL
	DemoPassword  string        // KEFU_DEMO_PASSWORD
	FlowsDir      string        // -flows, KEFU_FLOWS_DIR
	WebhookSecret string        // KEFU_WEBHOOK_SECRET; empty: a random one per process
	SelfURL       string        // -self-url, KEFU_URL: how flows' webhooks reach this server
	SweepInterval time.Duration // -sweep-interval, KEFU_SWEEP_INTERVAL
	ReminderAfter time.Duration // -reminder-after, KEFU_REMINDER_AFTER
	CloseAfter    time.Duration // -close-after, KEFU_CLOSE_AFTER
	ClarifyMargin float64       // -clarify-margin, KEFU_CLARIFY_MARGIN

	scratchSchema string // kefu dialog verify: the bench's schema, reopened
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envBool(key string, def bool) bool {
	if v, err := strconv.ParseBool(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

func envFloat(key string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(key), 64); err == nil {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return v
	}
	return def
}

// bindFlags declares the flags of serve (and migrate, which shares the database ones).
func (c *Config) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", envOr("KEFU_ADDR", ":8080"), "listen address")
	fs.StringVar(&c.DatabaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL connection string (empty: a private cluster in -pg-dir)")
	fs.StringVar(&c.PGDir, "pg-dir", envOr("KEFU_PG_DIR", "var/pg"), "folder of the private PostgreSQL cluster")
	fs.StringVar(&c.ORTLib, "onnxruntime-lib", os.Getenv("ONNXRUNTIME_LIB"), "ONNX Runtime shared library (empty: var/onnxruntime or a system copy)")
	fs.StringVar(&c.ModelDir, "model", envOr("KEFU_MODEL_DIR", "models/intent"), "intent model folder")
	fs.BoolVar(&c.Demo, "demo", envBool("KEFU_DEMO", true), "seed the demo knowledge base and agent into an empty database")
	fs.Float64Var(&c.KBThreshold, "kb-threshold", envFloat("KEFU_KB_THRESHOLD", 0.6), "knowledge score below which the bot says it is not sure")
	fs.IntVar(&c.EscalateAfter, "escalate-after", envInt("KEFU_ESCALATE_AFTER", 3), "unanswered turns in a row before a person is brought in (1: rephrase, 2: offer answers and a person, then escalate)")
	fs.StringVar(&c.FlowsDir, "flows", envOr("KEFU_FLOWS_DIR", "dialog/flows"), "folder of dialog flow files")
	fs.StringVar(&c.SelfURL, "self-url", os.Getenv("KEFU_URL"), "the server's own base URL for ${KEFU_URL} in flow webhooks (empty: http://127.0.0.1:PORT)")
	fs.DurationVar(&c.SweepInterval, "sweep-interval", envDuration("KEFU_SWEEP_INTERVAL", 10*time.Second), "how often idle conversations are reminded and closed")
	fs.DurationVar(&c.ReminderAfter, "reminder-after", envDuration("KEFU_REMINDER_AFTER", 3*time.Minute), "silence in the middle of a task before the bot asks if the customer is still there")
	fs.DurationVar(&c.CloseAfter, "close-after", envDuration("KEFU_CLOSE_AFTER", 15*time.Minute), "silence before a conversation with the bot is closed")
	fs.Float64Var(&c.ClarifyMargin, "clarify-margin", envFloat("KEFU_CLARIFY_MARGIN", 0.2), "top-two intent confidence gap below which the bot asks which was meant (negative: never)")
	c.WebhookSecret = os.Getenv("KEFU_WEBHOOK_SECRET")
	fs.DurationVar(&c.RouteInterval, "route-interval", envDuration("KEFU_ROUTE_INTERVAL", 2*time.Second), "how often the router looks at the queue besides when woken")
	c.DemoPassword = envOr("KEFU_DEMO_PASSWORD", "kefu-demo-2026")
}
