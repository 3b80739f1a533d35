package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/kefu-dev/kefu/api"
	"github.com/kefu-dev/kefu/dialog"
	"github.com/kefu-dev/kefu/retrieval"
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
	AbandonAfter  time.Duration // -abandon-after, KEFU_ABANDON_AFTER
	ClarifyMargin float64       // -clarify-margin, KEFU_CLARIFY_MARGIN
	Broker        string        // -broker, KEFU_BROKER: postgres, nats or memory (one instance); how frames reach other instances
	NATSURL       string        // -nats-url, KEFU_NATS_URL: the NATS server(s) of -broker nats
	AdminAddr     string        // -admin-addr, KEFU_ADMIN_ADDR: pprof and /metrics; empty: none
	WSNoDeflate   bool          // -ws-deflate=false, KEFU_WS_DEFLATE=false: no permessage-deflate (the zero value keeps it on)
	// Per-address limits (api.IPLimits); 0 turns one off.
	IPMaxConns     int     // -ip-max-conns, KEFU_IP_MAX_CONNS: WebSocket connections open at once per address
	IPConnRate     float64 // -ip-conn-rate, KEFU_IP_CONN_RATE: new WebSocket connections per second per address
	IPRequestRate  float64 // -ip-request-rate, KEFU_IP_REQUEST_RATE: HTTP requests per second per address
	IPExempt       string  // -ip-exempt, KEFU_IP_EXEMPT: addresses and prefixes no limit applies to
	TrustedProxies string  // -trusted-proxies, KEFU_TRUSTED_PROXIES: peers whose X-Forwarded-For is believed
	// The escalation policy (dialog.Config).
	EscalateAnger    float64 // -escalate-anger, KEFU_ESCALATE_ANGER: sentiment at or below minus this brings a person in at once
	EscalateNegative int     // -escalate-negative, KEFU_ESCALATE_NEGATIVE: negative messages in a row that do
	VIPDirect        bool    // -vip-direct, KEFU_VIP_DIRECT: verified VIPs skip the bot
	IdentitySecret   string  // KEFU_IDENTITY_SECRET (environment only): the key sites sign customer profiles with

	// The knowledge base's embedder (embedder.go).
	Embedder   string // -embedder, KEFU_EMBEDDER: encoder, intent (the intent model's encoder) or openai; empty: encoder when EncoderDir exists, else intent
	EncoderDir string // -encoder-model, KEFU_ENCODER_DIR; empty: models/encoder
	// KBAnswerability is the folder of fitted answerability models, one per embedder
	// (-kb-answerability, KEFU_KB_ANSWERABILITY); "off" answers on the cosine threshold alone.
	KBAnswerability string
	KBDenseWeight   float64 // -kb-dense-weight, KEFU_KB_DENSE_WEIGHT: the dense ranking's weight in the fusion
	KBLexWeight     float64 // -kb-lexical-weight, KEFU_KB_LEXICAL_WEIGHT: the lexical ranking's
	KBFallback      string  // -kb-fallback-language, KEFU_KB_FALLBACK_LANGUAGE: an entry's language when it has none in the customer's
	EmbedURL        string  // -embed-url, KEFU_EMBED_URL; empty: LLMURL
	EmbedAPIKey     string  // KEFU_EMBED_API_KEY (environment only); empty: LLMAPIKey
	EmbedModel      string  // -embed-model, KEFU_EMBED_MODEL
	EmbedDims       int     // -embed-dims, KEFU_EMBED_DIMS; 0: the model's own

	// The LLM that words knowledge answers (llm.go); off without LLMURL.
	LLMURL       string        // -llm-url, KEFU_LLM_URL: an OpenAI-compatible base URL (…/v1)
	LLMAPIKey    string        // KEFU_LLM_API_KEY (environment only: a flag would show in ps)
	LLMModel     string        // -llm-model, KEFU_LLM_MODEL
	LLMMaxTokens int           // -llm-max-tokens, KEFU_LLM_MAX_TOKENS
	LLMTimeout   time.Duration // -llm-timeout, KEFU_LLM_TIMEOUT

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
	fs.IntVar(&c.EscalateAfter, "escalate-after", envInt("KEFU_ESCALATE_AFTER", 3), "unanswered turns in a row before a person is brought in (1: rephrase, 2: offer answers and a person, then escalate; negative: never)")
	fs.Float64Var(&c.EscalateAnger, "escalate-anger", envFloat("KEFU_ESCALATE_ANGER", dialog.DefaultAngerScore), "a message this angry (sentiment at or below minus this, 0-1) brings a person in at once (negative: never)")
	fs.IntVar(&c.EscalateNegative, "escalate-negative", envInt("KEFU_ESCALATE_NEGATIVE", 2), "negative messages in a row that bring a person in (negative: never)")
	fs.BoolVar(&c.VIPDirect, "vip-direct", envBool("KEFU_VIP_DIRECT", false), "customers whose signed profile says tier vip go straight to a person, without the bot")
	c.IdentitySecret = os.Getenv("KEFU_IDENTITY_SECRET") // never a flag: flags show in ps
	fs.StringVar(&c.FlowsDir, "flows", envOr("KEFU_FLOWS_DIR", "dialog/flows"), "folder of dialog flow files")
	fs.StringVar(&c.SelfURL, "self-url", os.Getenv("KEFU_URL"), "the server's own base URL for ${KEFU_URL} in flow webhooks (empty: http://127.0.0.1:PORT)")
	fs.DurationVar(&c.SweepInterval, "sweep-interval", envDuration("KEFU_SWEEP_INTERVAL", 10*time.Second), "how often idle conversations are reminded and closed")
	fs.DurationVar(&c.ReminderAfter, "reminder-after", envDuration("KEFU_REMINDER_AFTER", 3*time.Minute), "silence in the middle of a task before the bot asks if the customer is still there")
	fs.DurationVar(&c.CloseAfter, "close-after", envDuration("KEFU_CLOSE_AFTER", 15*time.Minute), "silence before a conversation with the bot is closed")
	fs.DurationVar(&c.AbandonAfter, "abandon-after", envDuration("KEFU_ABANDON_AFTER", 2*time.Minute), "how long a customer waiting for a person may be gone (no connection, no message) before the wait counts as abandoned")
	fs.Float64Var(&c.ClarifyMargin, "clarify-margin", envFloat("KEFU_CLARIFY_MARGIN", 0.2), "top-two intent confidence gap below which the bot asks which was meant (negative: never)")
	c.WebhookSecret = os.Getenv("KEFU_WEBHOOK_SECRET")
	fs.StringVar(&c.Broker, "broker", envOr("KEFU_BROKER", "postgres"), "how frames reach the other instances: postgres (LISTEN/NOTIFY on the database), nats (-nats-url) or memory (a single instance)")
	fs.StringVar(&c.NATSURL, "nats-url", envOr("KEFU_NATS_URL", "nats://127.0.0.1:4222"), "NATS server(s) for -broker nats, separated by commas")
	fs.StringVar(&c.AdminAddr, "admin-addr", envOr("KEFU_ADMIN_ADDR", "127.0.0.1:6060"), "admin listener: pprof under /debug/pprof/ and /metrics (empty or off: none; each instance on a machine needs its own)")
	c.WSNoDeflate = !envBool("KEFU_WS_DEFLATE", true)
	fs.Var(notBool{&c.WSNoDeflate}, "ws-deflate", "compress WebSocket frames of 512 bytes or more (permessage-deflate) when the client offers it; a client that compresses its own frames then costs about 4 KB more while idle")
	fs.IntVar(&c.IPMaxConns, "ip-max-conns", envInt("KEFU_IP_MAX_CONNS", 200), "WebSocket connections one client address may hold open at once (0: no cap)")
	fs.Float64Var(&c.IPConnRate, "ip-conn-rate", envFloat("KEFU_IP_CONN_RATE", 10), "new WebSocket connections per second one client address may open, in bursts of twice as many (0: no limit)")
	fs.Float64Var(&c.IPRequestRate, "ip-request-rate", envFloat("KEFU_IP_REQUEST_RATE", 20), "HTTP requests per second one client address may make, in bursts of twice as many (0: no limit)")
	fs.StringVar(&c.IPExempt, "ip-exempt", envOr("KEFU_IP_EXEMPT", "127.0.0.0/8,::1"), "addresses and prefixes, comma-separated, that no per-address limit applies to")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", os.Getenv("KEFU_TRUSTED_PROXIES"), "addresses and prefixes, comma-separated, of the proxies whose X-Forwarded-For names the client (empty: the header is ignored)")
	fs.DurationVar(&c.RouteInterval, "route-interval", envDuration("KEFU_ROUTE_INTERVAL", 2*time.Second), "how often the router looks at the queue besides when woken")
	c.DemoPassword = envOr("KEFU_DEMO_PASSWORD", "kefu-demo-2026")
	fs.StringVar(&c.Embedder, "embedder", os.Getenv("KEFU_EMBEDDER"), "knowledge embedder: encoder (the sentence encoder in -encoder-model), intent (the intent model's encoder) or openai (an OpenAI-compatible endpoint); empty: encoder when -encoder-model exists, else intent")
	fs.Float64Var(&c.KBDenseWeight, "kb-dense-weight", envFloat("KEFU_KB_DENSE_WEIGHT", 1), "weight of the dense (vector) ranking in the hybrid fusion")
	fs.Float64Var(&c.KBLexWeight, "kb-lexical-weight", envFloat("KEFU_KB_LEXICAL_WEIGHT", 1), "weight of the lexical (BM25) ranking in the hybrid fusion")
	fs.StringVar(&c.KBFallback, "kb-fallback-language", envOr("KEFU_KB_FALLBACK_LANGUAGE", "en"),
		"the language an answer is given in when the entry has none in the customer's")
	fs.StringVar(&c.KBAnswerability, "kb-answerability", envOr("KEFU_KB_ANSWERABILITY", "models/answerability"),
		"folder of answerability models (kefu kb calibrate), one per embedder; off: answer on -kb-threshold alone")
	fs.StringVar(&c.EncoderDir, "encoder-model", envOr("KEFU_ENCODER_DIR", "models/encoder"), "sentence encoder folder for -embedder encoder")
	fs.StringVar(&c.EmbedURL, "embed-url", os.Getenv("KEFU_EMBED_URL"), "OpenAI-compatible base URL for -embedder openai (empty: -llm-url)")
	fs.StringVar(&c.EmbedModel, "embed-model", os.Getenv("KEFU_EMBED_MODEL"), "embedding model for -embedder openai")
	fs.IntVar(&c.EmbedDims, "embed-dims", envInt("KEFU_EMBED_DIMS", 0), "vector size to ask the embedding model for (0: its own)")
	c.EmbedAPIKey = os.Getenv("KEFU_EMBED_API_KEY")
	fs.StringVar(&c.LLMURL, "llm-url", os.Getenv("KEFU_LLM_URL"), "OpenAI-compatible base URL (…/v1) of an LLM that words knowledge answers (empty: no LLM)")
	fs.StringVar(&c.LLMModel, "llm-model", os.Getenv("KEFU_LLM_MODEL"), "the LLM's model name")
	fs.IntVar(&c.LLMMaxTokens, "llm-max-tokens", envInt("KEFU_LLM_MAX_TOKENS", 400), "longest LLM answer, in tokens (a longer one falls back to the entry's own text)")
	fs.DurationVar(&c.LLMTimeout, "llm-timeout", envDuration("KEFU_LLM_TIMEOUT", 20*time.Second), "longest wait for an LLM answer before the entry's own text is given")
	c.LLMAPIKey = os.Getenv("KEFU_LLM_API_KEY") // never a flag: flags show in ps
}

// search is the knowledge search the configuration asks for.
func (c Config) search() retrieval.SearchOptions {
	o := retrieval.DefaultSearch
	o.Fallback = c.KBFallback
	if c.KBDenseWeight > 0 || c.KBLexWeight > 0 {
		o.DenseWeight, o.LexWeight = c.KBDenseWeight, c.KBLexWeight
	}
	return o
}

// limits is the per-address limits the configuration asks for.
func (c Config) limits() (api.IPLimits, error) {
	exempt, err := api.ParsePrefixes(c.IPExempt)
	if err != nil {
		return api.IPLimits{}, fmt.Errorf("-ip-exempt: %w", err)
	}
	proxies, err := api.ParsePrefixes(c.TrustedProxies)
	if err != nil {
		return api.IPLimits{}, fmt.Errorf("-trusted-proxies: %w", err)
	}
	return api.IPLimits{MaxConns: c.IPMaxConns, ConnRate: c.IPConnRate, RequestRate: c.IPRequestRate,
		Exempt: exempt, TrustedProxies: proxies}, nil
}

// notBool is a boolean flag stored negated, so that a Config's zero value keeps what the
// flag turns on by default.
type notBool struct{ p *bool }

func (n notBool) String() string {
	if n.p == nil {
		return ""
	}
	return strconv.FormatBool(!*n.p)
}

func (n notBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*n.p = !v
	return nil
}

func (n notBool) IsBoolFlag() bool { return true }
