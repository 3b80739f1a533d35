package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kefu-dev/kefu/retrieval"
)

// KBBenchReport is what `kefu kb bench` prints: one run's figures.
type KBBenchReport struct {
	Schema   string `json:"schema,omitempty"` // kept with -keep
	Embedder string `json:"embedder"`
	Cores    int    `json:"cores"`
	Entries  int    `json:"entries"`
	Topics   int    `json:"topics"`
	Vectors  int    `json:"vectors"`
	Postings int    `json:"postings"`
	Import   struct {
		Seconds          float64 `json:"seconds"`
		EntriesPerSecond float64 `json:"entries_per_second"`
		ParseSeconds     float64 `json:"parse_seconds"`
		// Insert is the import's time less the steps below: the entries' rows.
		InsertSeconds  float64 `json:"insert_seconds"`
		LexicalSeconds float64 `json:"lexical_seconds"`
		// Embedding is the wall time from the first phrasing embedded to the last vector
		// written; Embed the embedder's time in it summed over its workers, Vectors the
		// writer's (they run side by side).
		EmbeddingSeconds float64 `json:"embedding_seconds"`
		EmbedSeconds     float64 `json:"embed_seconds"`
		VectorsSeconds   float64 `json:"vectors_seconds"`
		IndexSeconds     float64 `json:"index_seconds"`
	} `json:"import"`
	Repeat  int `json:"repeat,omitempty"` // each search's fastest of this many
	Queries struct {
		Paraphrases int `json:"paraphrases"` // of generated entries' questions: the entry is the answer
		Demo        int `json:"demo"`        // the demo shop's evaluation queries
	} `json:"queries"`
	QueryEmbed Latency               `json:"query_embed"` // one question through the embedder
	Search     map[string]ModeResult `json:"search"`
	HNSW       struct {
		K        int                     `json:"k"`
		Queries  int                     `json:"queries"`
		ExactP50 float64                 `json:"exact_p50_ms"`
		ExactP99 float64                 `json:"exact_p99_ms"`
		Chosen   int                     `json:"chosen_ef_search"` // the store's
		Points   []retrieval.RecallPoint `json:"points"`
	} `json:"hnsw"`
}

// Latency is a set of timings in milliseconds.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// ModeResult is one search mode's timings and quality.
type ModeResult struct {
	WithoutEmbedding Latency `json:"without_embedding"`
	WithEmbedding    Latency `json:"with_embedding"`
	// ParaphraseRecall10 is the share of paraphrases whose entry is in the first 10;
	// DemoRecall5 the share of demo queries with a relevant topic in the first 5.
	ParaphraseRecall10 float64 `json:"paraphrase_recall@10"`
	DemoRecall5        float64 `json:"demo_recall@5"`
}

// kbBench is `kefu kb bench`: on a scratch schema, import a generated FAQ of -entries entries
// in Chinese and English through the store's import, then time searches in each mode with and
// without embedding the question, and the HNSW index's recall against exact search.
func kbBench(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("kb bench", flag.ContinueOnError)
	var cfg Config
	cfg.bindFlags(fs)
	nEntries := fs.Int("entries", 100000, "generated FAQ entries (the demo shop's are among them)")
	nQueries := fs.Int("queries", 2000, "queries to time in each mode: paraphrases of entries' questions and the demo evaluation queries")
	efList := fs.String("ef-search", "20,40,64,100,128,200", "HNSW ef_search values at which to measure recall against exact search")
	nRecall := fs.Int("recall-queries", 500, "queries whose exact nearest phrasings are computed for the recall measurement")
	seed := fs.Uint64("seed", 1, "seed of the generated entries and queries")
	demoQueries := fs.String("demo-queries", "retrieval/demo/eval/queries.jsonl", "the demo shop's evaluation queries (skipped when missing)")
	keep := fs.Bool("keep", false, "keep the scratch schema (its name is printed) to look at the data afterwards")
	schema := fs.String("schema", "", "a schema kept by an earlier run with the same -entries and -seed: search it without importing again")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	repeat := fs.Int("repeat", 1, "time every search this many times and keep each one's fastest (for a machine shared with other work)")
	explain := fs.Int("explain", 0, "print the query plans (EXPLAIN ANALYZE) of this many of the slowest hybrid searches to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var efs []int
	for _, f := range strings.Split(*efList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1000 {
			return fmt.Errorf("-ef-search: %q is not a number from 1 to 1000", f)
		}
		efs = append(efs, n)
	}
	if *nEntries < 1 || *nQueries < 1 {
		return fmt.Errorf("-entries and -queries must be positive")
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var demo []retrieval.EvalQuery
	if f, err := os.Open(*demoQueries); err == nil {
		demo, err = retrieval.ReadEvalQueries(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", *demoQueries, err)
		}
	} else {
		log.Warn("kb bench: no demo queries", "err", err)
	}

	gen, err := newFAQGen(*seed)
	if err != nil {
		return err
	}
	rows := gen.entries(*nEntries)
	var jsonl bytes.Buffer
	enc := json.NewEncoder(&jsonl)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if *schema != "" {
		if !scratchName.MatchString(*schema) {
			return fmt.Errorf("-schema %q: want a kefu_scratch_… schema a run kept", *schema)
		}
		cfg.scratchSchema = *schema
	}
	db, err := openScratch(ctx, cfg, 4, quiet)
	if err != nil {
		return err
	}
	db.keep = db.keep || *keep
	defer db.Close()
	model, err := loadModel(cfg.ORTLib, cfg.ModelDir)
	if err != nil {
		return err
	}
	defer model.Close()
	emb, err := newEmbedder(ctx, cfg, model)
	if err != nil {
		return err
	}
	defer closeEmbedder(emb, model)
	kb := retrieval.NewStore(db.Pool, emb, cfg.KBThreshold, quiet)
	retrieval.WarmLexical()

	var rep KBBenchReport
	rep.Embedder, rep.Cores = emb.EmbedderID(), runtime.NumCPU()
	if *keep {
		rep.Schema = db.name
	}
	log.Info("kb bench: generated", "entries", len(rows), "bytes", jsonl.Len(), "schema", db.name)

	start := time.Now()
	entries, rowErrs := retrieval.ParseImport(&jsonl, "jsonl", "en")
	if len(rowErrs) > 0 {
		return fmt.Errorf("generated entry rejected: %v", rowErrs[0])
	}
	rep.Import.ParseSeconds = time.Since(start).Seconds()
	if *schema != "" {
		if n, err := kb.Count(ctx); err != nil || n != len(entries) {
			return fmt.Errorf("schema %s has %d entries (%v), want the %d of -entries", *schema, n, err, len(entries))
		}
		rep.Schema = *schema
		return kbBenchSearch(ctx, kb, db, emb, &rep, gen, entries, demo, *nQueries, *nRecall, *explain, max(*repeat, 1), efs, log)
	}
	last := time.Now()
	t0 := time.Now()
	err = kb.Import(ctx, "kefu kb bench", entries, func(n int) {
		if time.Since(last) > 5*time.Second || n == len(entries) {
			last = time.Now()
			log.Info("kb bench: importing", "stored", n, "of", len(entries), "per_s", int(float64(n)/time.Since(t0).Seconds()))
		}
	})
	if err != nil {
		return err
	}
	rep.Import.Seconds = round4(time.Since(start).Seconds())
	rep.Import.EntriesPerSecond = round4(float64(len(entries)) / rep.Import.Seconds)
	it := kb.ImportTimings()
	rep.Import.LexicalSeconds, rep.Import.EmbedSeconds = round4(it.Lexical.Seconds()), round4(it.Embed.Seconds())
	rep.Import.VectorsSeconds, rep.Import.IndexSeconds = round4(it.Vectors.Seconds()), round4(it.Index.Seconds())
	rep.Import.EmbeddingSeconds = round4(it.Embedding.Seconds())
	rep.Import.InsertSeconds = round4(time.Since(t0).Seconds() - it.Lexical.Seconds() - it.Embedding.Seconds() - it.Index.Seconds())
	rep.Import.ParseSeconds = round4(rep.Import.ParseSeconds)
	log.Info("kb bench: imported", "seconds", rep.Import.Seconds)
	// Fresh tables have no statistics until autovacuum comes by: a served knowledge base has them.
	if _, err := db.Pool.Exec(ctx, "VACUUM ANALYZE retrieval_entry, retrieval_vector, retrieval_posting"); err != nil {
		return err
	}

	return kbBenchSearch(ctx, kb, db, emb, &rep, gen, entries, demo, *nQueries, *nRecall, *explain, max(*repeat, 1), efs, log)
}

// kbBenchSearch is the search half of kefu kb bench.
func kbBenchSearch(ctx context.Context, kb *retrieval.Store, db *scratch, emb retrieval.Embedder, rep *KBBenchReport, gen *faqGen,
	entries []retrieval.Entry, demo []retrieval.EvalQuery, nQueries, nRecall, explain, repeat int, efs []int, log *slog.Logger) error {
	rep.Entries = len(entries)
	topics := map[string]bool{}
	for _, e := range entries {
		topics[e.Key] = true
	}
	rep.Topics = len(topics)
	if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM retrieval_vector), (SELECT count(*) FROM retrieval_posting)`).Scan(&rep.Vectors, &rep.Postings); err != nil {
		return err
	}
	// The queries: the demo's (their topics are among the entries) and paraphrases of entries.
	queries := gen.paraphrases(entries, max(nQueries-min(len(demo), nQueries/4), 0))
	rep.Queries.Paraphrases = len(queries)
	rep.Repeat = repeat
	demo = demo[:min(len(demo), nQueries-len(queries))]
	rep.Queries.Demo = len(demo)
	queries = append(queries, demo...)
	texts := make([]string, len(queries))
	for i, q := range queries {
		texts[i] = q.Query
	}
	vecs, err := emb.Embed(ctx, texts)
	if err != nil {
		return err
	}
	var embedMs []float64
	for _, t := range texts[:min(len(texts), 500)] {
		t1 := time.Now()
		if _, err := emb.Embed(ctx, []string{t}); err != nil {
			return err
		}
		embedMs = append(embedMs, float64(time.Since(t1).Nanoseconds())/1e6)
	}
	rep.QueryEmbed = latencyOf(embedMs)

	// A warm-up, then each mode with and without embedding the question.
	if _, err := kb.BenchSearch(ctx, queries[:min(len(queries), 200)], vecs[:min(len(queries), 200)], 10); err != nil {
		return err
	}
	rep.Search = map[string]ModeResult{}
	for _, mode := range []string{retrieval.ModeDense, retrieval.ModeLexical, retrieval.ModeHybrid} {
		o := retrieval.DefaultSearch
		o.Mode = mode
		kb.SetSearch(o)
		var r ModeResult
		var slowest []float64
		for _, with := range []bool{false, true} {
			v := vecs
			if with {
				v = nil
			}
			samples, err := kb.BenchSearch(ctx, queries, v, 10)
			if err != nil {
				return err
			}
			ms := make([]float64, len(samples))
			for i, s := range samples {
				ms[i] = s.Ms
			}
			// More passes keep each query's fastest time: on a machine that other work
			// shares, the figure closest to the search's own cost.
			for range repeat - 1 {
				again, err := kb.BenchSearch(ctx, queries, v, 10)
				if err != nil {
					return err
				}
				for i, s := range again {
					ms[i] = min(ms[i], s.Ms)
				}
			}
			if with {
				r.WithEmbedding = latencyOf(ms)
				continue
			}
			r.WithoutEmbedding = latencyOf(ms)
			slowest = ms
			var para, dem int
			for i, s := range samples {
				q := queries[i]
				top := s.Keys
				if i >= rep.Queries.Paraphrases {
					top = top[:min(5, len(top))]
				}
				if slices.ContainsFunc(top, func(k string) bool { return slices.Contains(q.Relevant, k) || slices.Contains(q.Relevant, topicOf(k)) }) {
					if i < rep.Queries.Paraphrases {
						para++
					} else {
						dem++
					}
				}
			}
			r.ParaphraseRecall10 = round4(float64(para) / float64(max(1, rep.Queries.Paraphrases)))
			r.DemoRecall5 = round4(float64(dem) / float64(max(1, rep.Queries.Demo)))
		}
		rep.Search[mode] = r
		if mode == retrieval.ModeHybrid && explain > 0 {
			order := make([]int, len(queries))
			for i := range order {
				order[i] = i
			}
			slices.SortFunc(order, func(a, b int) int { return cmpFloat(slowest[b], slowest[a]) })
			for _, i := range order[:min(explain, len(order))] {
				plans, err := kb.ExplainSearch(ctx, queries[i].Query, vecs[i], queries[i].Language)
				if err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "--- %q (%s): %.2f ms\n%s\n", queries[i].Query, queries[i].Language, slowest[i], strings.Join(plans, "\n\n"))
			}
		}
		log.Info("kb bench: searched", "mode", mode, "p99_ms", r.WithoutEmbedding.P99, "with_embedding_p99_ms", r.WithEmbedding.P99)
	}
	kb.SetSearch(retrieval.DefaultSearch)

	rep.HNSW.K, rep.HNSW.Queries = 10, min(nRecall, len(vecs))
	rep.HNSW.Chosen = retrieval.DefaultSearch.EF()
	if rep.HNSW.Queries > 0 {
		log.Info("kb bench: exact search for recall", "queries", rep.HNSW.Queries)
		exactMs, points, err := kb.DenseRecall(ctx, vecs[:rep.HNSW.Queries], rep.HNSW.K, efs)
		if err != nil {
			return err
		}
		el := latencyOf(exactMs)
		rep.HNSW.ExactP50, rep.HNSW.ExactP99, rep.HNSW.Points = el.P50, el.P99, points
	}

	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	return out.Encode(rep)
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// topicOf is the demo topic of a generated entry's key.
func topicOf(key string) string {
	t, _, _ := strings.Cut(key, "#")
	return t
}

func latencyOf(ms []float64) Latency {
	s := slices.Clone(ms)
	slices.Sort(s)
	if len(s) == 0 {
		return Latency{}
	}
	return Latency{P50: round4(percentile(s, 0.5)), P90: round4(percentile(s, 0.9)), P99: round4(percentile(s, 0.99)), Max: round4(s[len(s)-1])}
}

// faqGen makes a shop's FAQ of any size from the demo knowledge base: each entry is one of
// the demo's topics asked about one product (a brand, a model and a category), its question,
// title and alternates the demo's phrasings with the product in them, and its answer the
// topic's answer with the product's details and other answers' sentences (numbers changed),
// 50 to 300 characters. Topics, brands, categories and sentences are drawn Zipf-like, as a
// real FAQ's words are: a few very common, most rare.
type faqGen struct {
	rng        *rand.Rand
	topics     []genTopic
	topicZipf  *rand.Zipf
	brandZipf  *rand.Zipf
	catZipf    *rand.Zipf
	sentZipf   map[string]*rand.Zipf
	sentences  map[string][]string // every demo answer's sentences, by language
	brandsZh   []string
	brandsEn   []string
	categories [][2]string // zh, en
}

// genTopic is a demo topic in both languages.
type genTopic struct {
	key string
	by  map[string]retrieval.Entry
}

var genCategories = [][2]string{
	{"蓝牙耳机", "wireless earbuds"}, {"手机壳", "phone case"}, {"连衣裙", "dress"}, {"跑步鞋", "running shoes"},
	{"双肩包", "backpack"}, {"保温杯", "thermos"}, {"电饭煲", "rice cooker"}, {"机械键盘", "mechanical keyboard"},
	{"充电宝", "power bank"}, {"智能手表", "smart watch"}, {"羽绒服", "down jacket"}, {"牛仔裤", "jeans"},
	{"面霜", "face cream"}, {"洗发水", "shampoo"}, {"台灯", "desk lamp"}, {"空气炸锅", "air fryer"},
	{"吸尘器", "vacuum cleaner"}, {"行李箱", "suitcase"}, {"四件套", "bedding set"}, {"绿茶", "green tea"},
	{"咖啡豆", "coffee beans"}, {"猫粮", "cat food"}, {"积木", "building blocks"}, {"瑜伽垫", "yoga mat"},
	{"护手霜", "hand cream"}, {"电动牙刷", "electric toothbrush"}, {"路由器", "router"}, {"显示器", "monitor"},
	{"无线鼠标", "wireless mouse"}, {"数据线", "charging cable"}, {"太阳镜", "sunglasses"}, {"棒球帽", "baseball cap"},
	{"围巾", "scarf"}, {"毛衣", "sweater"}, {"衬衫", "shirt"}, {"拖鞋", "slippers"}, {"炒锅", "wok"},
	{"餐具套装", "tableware set"}, {"加湿器", "humidifier"}, {"电风扇", "electric fan"}, {"婴儿推车", "stroller"},
	{"登山杖", "trekking pole"}, {"帐篷", "tent"}, {"口红", "lipstick"}, {"香水", "perfume"}, {"床垫", "mattress"},
}

var (
	genZhBrandChars = []rune("星云悦诺川禾光森美优达安乐泰华宝启芯朗拓青山海晨鹿舟木果蓝白雅思凯博瑞欣和顺佳新源锐")
	genEnSyllables  = []string{"no", "va", "lu", "mi", "ka", "ra", "zen", "to", "bel", "lo", "ar", "tec", "vi", "sol", "mo", "da",
		"ne", "ri", "quo", "xi", "ae", "fin", "gra", "ho", "jo", "ki", "pe", "sa", "ul", "wen"}
	genAttrs = [][3]string{ // zh, en, unit
		{"重量", "weight", "g"}, {"保修期", "warranty", "months"}, {"电池容量", "battery capacity", "mAh"},
		{"尺寸", "size", "cm"}, {"功率", "power", "W"}, {"容量", "capacity", "ml"}, {"续航", "battery life", "hours"},
	}
	genZhPrefixes = []string{"亲，", "你好，", "请问", "在吗，", "客服，", ""}
	genEnPrefixes = []string{"hi, ", "hello ", "hey, ", "quick question: ", ""}
)

func newFAQGen(seed uint64) (*faqGen, error) {
	demo, err := retrieval.DemoEntries()
	if err != nil {
		return nil, err
	}
	g := &faqGen{rng: rand.New(rand.NewPCG(seed, 0x6b656675)), sentences: map[string][]string{}, sentZipf: map[string]*rand.Zipf{},
		categories: genCategories}
	byKey := map[string]int{}
	for _, e := range demo {
		i, ok := byKey[e.Key]
		if !ok {
			i = len(g.topics)
			byKey[e.Key] = i
			g.topics = append(g.topics, genTopic{key: e.Key, by: map[string]retrieval.Entry{}})
		}
		g.topics[i].by[e.Language] = e
		g.sentences[e.Language] = append(g.sentences[e.Language], splitSentences(e.Answer)...)
	}
	// The Zipf draws rank topics and sentences in a shuffled order, so the common ones are
	// not simply the file's first.
	g.rng.Shuffle(len(g.topics), func(i, j int) { g.topics[i], g.topics[j] = g.topics[j], g.topics[i] })
	for _, lang := range slices.Sorted(maps.Keys(g.sentences)) { // in a fixed order: the draws depend on it
		s := g.sentences[lang]
		g.rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
		g.sentZipf[lang] = rand.NewZipf(g.rng, 1.1, 1, uint64(len(s)-1))
	}
	g.topicZipf = rand.NewZipf(g.rng, 1.05, 2, uint64(len(g.topics)-1))
	g.catZipf = rand.NewZipf(g.rng, 1.1, 1, uint64(len(g.categories)-1))
	const brands = 3000
	seen := map[string]bool{}
	for len(g.brandsZh) < brands {
		zh := string([]rune{genZhBrandChars[g.rng.IntN(len(genZhBrandChars))], genZhBrandChars[g.rng.IntN(len(genZhBrandChars))]})
		en := genEnSyllables[g.rng.IntN(len(genEnSyllables))] + genEnSyllables[g.rng.IntN(len(genEnSyllables))]
		if g.rng.IntN(3) == 0 {
			en += genEnSyllables[g.rng.IntN(len(genEnSyllables))]
		}
		en = strings.ToUpper(en[:1]) + en[1:]
		if seen[zh+"|"+en] {
			continue
		}
		seen[zh+"|"+en] = true
		g.brandsZh, g.brandsEn = append(g.brandsZh, zh), append(g.brandsEn, en)
	}
	g.brandZipf = rand.NewZipf(g.rng, 1.2, 3, brands-1)
	return g, nil
}

// splitSentences cuts an answer after each full stop (Chinese or Latin).
func splitSentences(text string) []string {
	var out []string
	start := 0
	for i, r := range text {
		end := i + utf8.RuneLen(r)
		if strings.ContainsRune("。！？", r) || ((r == '.' || r == '!' || r == '?') && (end == len(text) || text[end] == ' ')) {
			if s := strings.TrimSpace(text[start:end]); s != "" {
				out = append(out, s)
			}
			start = end
		}
	}
	if s := strings.TrimSpace(text[start:]); s != "" {
		out = append(out, s)
	}
	return out
}

// product is what one generated entry is about.
type product struct {
	brandZh, brandEn, model, catZh, catEn string
}

func (p product) name(lang string) string {
	if lang == "zh" {
		return p.brandZh + p.model + p.catZh
	}
	return p.brandEn + " " + p.model + " " + p.catEn
}

// entries makes n import rows: the demo's, then generated topics, about half of them in both
// languages.
func (g *faqGen) entries(n int) []retrieval.ImportRow {
	var rows []retrieval.ImportRow
	demo, _ := retrieval.DemoEntries()
	for _, e := range demo[:min(n, len(demo))] {
		rows = append(rows, retrieval.ImportRow{ID: e.Key, Question: e.Question, Answer: e.Answer, Language: e.Language,
			Title: e.Title, Alternatives: e.Alternates})
	}
	for k := 0; len(rows) < n; k++ {
		t := g.topics[g.topicZipf.Uint64()]
		c := g.categories[g.catZipf.Uint64()]
		b := g.brandZipf.Uint64()
		p := product{brandZh: g.brandsZh[b], brandEn: g.brandsEn[b], catZh: c[0], catEn: c[1], model: g.modelName()}
		langs := []string{"zh", "en"}
		switch r := g.rng.IntN(10); {
		case r < 3:
			langs = []string{"zh"}
		case r < 5:
			langs = []string{"en"}
		}
		key := fmt.Sprintf("%s#%06d", t.key, k) // the topic, before '#', is what the demo's queries are relevant to
		for _, lang := range langs {
			if e, ok := t.by[lang]; ok && len(rows) < n {
				rows = append(rows, g.entry(key, lang, e, p))
			}
		}
	}
	return rows
}

func (g *faqGen) modelName() string {
	letters := "ABCDEFGHKMNPRSTVXZ"
	m := string(letters[g.rng.IntN(len(letters))])
	if g.rng.IntN(3) == 0 {
		m += string(letters[g.rng.IntN(len(letters))])
	}
	m += strconv.Itoa(1 + g.rng.IntN([]int{9, 99, 999, 9999}[g.rng.IntN(4)]))
	if g.rng.IntN(5) == 0 {
		m += []string{" Pro", " Max", " Lite", " Plus", " mini"}[g.rng.IntN(5)]
	}
	return m
}

func (g *faqGen) entry(key, lang string, e retrieval.Entry, p product) retrieval.ImportRow {
	name := p.name(lang)
	q := e.Question
	var question, title string
	if lang == "zh" {
		question = []string{name + q, "请问" + name + q, name + "：" + q, q + "（" + name + "）"}[g.rng.IntN(4)]
		title = e.Title + "（" + p.brandZh + p.catZh + "）"
	} else {
		question = []string{q + " (" + name + ")", "For the " + name + ": " + lowerFirst(q), name + ": " + q,
			"I bought the " + name + ". " + q}[g.rng.IntN(4)]
		title = e.Title + " – " + p.brandEn + " " + p.catEn
	}
	alts := slices.Clone(e.Alternates)
	g.rng.Shuffle(len(alts), func(i, j int) { alts[i], alts[j] = alts[j], alts[i] })
	alts = alts[:min(len(alts), 1+g.rng.IntN(3))]
	for i, a := range alts {
		if lang == "zh" {
			alts[i] = []string{p.brandZh + a, a + "，" + p.catZh, p.model + a, p.brandZh + p.catZh + a}[g.rng.IntN(4)]
		} else {
			alts[i] = []string{a + " " + p.brandEn, p.brandEn + " " + a, a + " for the " + p.catEn, p.model + " " + a}[g.rng.IntN(4)]
		}
	}
	// The answer: the product's details, the topic's answer, then other answers' sentences,
	// cut to a length from 50 to 300 characters.
	target := 50 + g.rng.IntN(251)
	attr := genAttrs[g.rng.IntN(len(genAttrs))]
	value := strconv.Itoa(1+g.rng.IntN(999)) + attr[2]
	var sents []string
	if lang == "zh" {
		sents = append(sents, name+"的"+attr[0]+"为"+value+"。")
	} else {
		sents = append(sents, "The "+name+" has a "+attr[1]+" of "+value+".")
	}
	own := splitSentences(e.Answer)
	sents = append(sents, own[:1+g.rng.IntN(len(own))]...)
	for runeLen(sents) < target {
		pool := g.sentences[lang]
		sents = append(sents, g.changeNumbers(pool[g.sentZipf[lang].Uint64()]))
	}
	sep := ""
	if lang != "zh" {
		sep = " "
	}
	answer := strings.Join(sents, sep)
	if r := []rune(answer); len(r) > 300 {
		answer = string(r[:300])
	}
	return retrieval.ImportRow{ID: key, Question: question, Answer: answer, Language: lang, Title: title, Alternatives: alts}
}

func runeLen(s []string) int {
	n := 0
	for _, x := range s {
		n += utf8.RuneCountInString(x)
	}
	return n
}

func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToLower(r)) + s[n:]
}

// changeNumbers gives each number in s another value of as many digits, half the time.
func (g *faqGen) changeNumbers(s string) string {
	if g.rng.IntN(2) == 0 {
		return s
	}
	b := []byte(s)
	for i := range b {
		if b[i] >= '0' && b[i] <= '9' && (i == 0 || b[i-1] < '0' || b[i-1] > '9') {
			b[i] = byte('1' + g.rng.IntN(9))
		}
	}
	return string(b)
}

// paraphrases makes n queries from random entries' questions and alternates as customers
// type them: a greeting in front, a character or letter dropped or swapped, the product
// named by its brand alone; each query's relevant topic is its entry's.
func (g *faqGen) paraphrases(entries []retrieval.Entry, n int) []retrieval.EvalQuery {
	out := make([]retrieval.EvalQuery, 0, n)
	for len(out) < n {
		e := entries[g.rng.IntN(len(entries))]
		q := e.Question
		if len(e.Alternates) > 0 && g.rng.IntN(5) < 2 {
			q = e.Alternates[g.rng.IntN(len(e.Alternates))]
		}
		for range 1 + g.rng.IntN(2) {
			q = g.perturb(q, e.Language)
		}
		out = append(out, retrieval.EvalQuery{Query: q, Relevant: []string{e.Key}, Language: e.Language})
	}
	return out
}

func (g *faqGen) perturb(q, lang string) string {
	r := []rune(q)
	switch g.rng.IntN(4) {
	case 0: // a greeting
		if lang == "zh" {
			return genZhPrefixes[g.rng.IntN(len(genZhPrefixes))] + q
		}
		return genEnPrefixes[g.rng.IntN(len(genEnPrefixes))] + strings.ToLower(q)
	case 1: // a character dropped
		if len(r) > 6 {
			i := 1 + g.rng.IntN(len(r)-2)
			return string(append(r[:i:i], r[i+1:]...))
		}
	case 2: // two neighbours swapped
		if len(r) > 6 {
			i := 1 + g.rng.IntN(len(r)-3)
			r[i], r[i+1] = r[i+1], r[i]
			return string(r)
		}
	case 3: // no punctuation, lower case
		return strings.Map(func(c rune) rune {
			if unicode.IsPunct(c) {
				return ' '
			}
			return unicode.ToLower(c)
		}, q)
	}
	return q
}
