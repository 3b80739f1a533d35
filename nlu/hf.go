package nlu

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strconv"

	"github.com/kefu-dev/kefu"
)

// hfMaxLen caps the tokens per message of a Hugging Face model: customer messages are short,
// and BERT's cost grows with the square of the length.
const hfMaxLen = 128

// hfConfig is what nlu reads of a Hugging Face config.json (a BertConfig).
type hfConfig struct {
	VocabSize             int               `json:"vocab_size"`
	HiddenSize            int               `json:"hidden_size"`
	MaxPositionEmbeddings int               `json:"max_position_embeddings"`
	ID2Label              map[string]string `json:"id2label"`
	Label2ID              map[string]int    `json:"label2id"`
}

// hfTokenizerConfig is what nlu reads of tokenizer_config.json.
type hfTokenizerConfig struct {
	DoLowerCase          *bool    `json:"do_lower_case"`          // default true
	StripAccents         *bool    `json:"strip_accents"`          // default: as do_lower_case
	TokenizeChineseChars *bool    `json:"tokenize_chinese_chars"` // default true
	ModelMaxLength       *float64 `json:"model_max_length"`       // 1e30 when the tokenizer sets none
}

// kefuJSON is the optional kefu.json beside a Hugging Face export: what training/ would have
// written in model.json.
type kefuJSON struct {
	Version     *string  `json:"version"`
	Temperature *float64 `json:"temperature"`
	Threshold   *float64 `json:"threshold"`
}

// loadHF opens a Hugging Face BERT export, laid out as Load describes.
func loadHF(dir string) (*Classifier, error) {
	f, err := readHF(dir)
	if err != nil {
		return nil, err
	}
	return open(filepath.Join(dir, "model.onnx"), f.meta, f.tok, f.labels, f.cfgPath+" (id2label)", f.cfgPath)
}

// hfFolder is what readHF makes of a Hugging Face export's files other than model.onnx.
type hfFolder struct {
	meta    Meta
	tok     *Tokenizer
	labels  []string
	cfgPath string
}

// readHF reads a Hugging Face BERT export's config.json, tokenizer_config.json, vocab.txt and
// kefu.json, as Load describes.
func readHF(dir string) (hfFolder, error) {
	cfgPath := filepath.Join(dir, "config.json")
	var cfg hfConfig
	if err := readJSON(cfgPath, &cfg); err != nil {
		return hfFolder{}, err
	}

	tcPath := filepath.Join(dir, "tokenizer_config.json")
	var tc hfTokenizerConfig
	if isFile(tcPath) {
		if err := readJSON(tcPath, &tc); err != nil {
			return hfFolder{}, err
		}
	}
	lower := tc.DoLowerCase == nil || *tc.DoLowerCase
	// nlu's tokenizer strips accents exactly when it lower-cases, as BERT does by default.
	if tc.StripAccents != nil && *tc.StripAccents != lower {
		return hfFolder{}, loadError(kefu.Invalid, nil, "%s: strip_accents=%t with do_lower_case=%t is not supported: nlu strips accents exactly when it lower-cases", tcPath, *tc.StripAccents, lower)
	}
	if tc.TokenizeChineseChars != nil && !*tc.TokenizeChineseChars {
		return hfFolder{}, loadError(kefu.Invalid, nil, "%s: tokenize_chinese_chars=false is not supported: nlu always splits CJK ideographs", tcPath)
	}

	vocabPath := filepath.Join(dir, "vocab.txt")
	tok, err := loadVocab(vocabPath, lower, false)
	if err != nil {
		return hfFolder{}, err
	}
	if cfg.VocabSize > 0 && cfg.VocabSize != tok.VocabSize() {
		return hfFolder{}, loadError(kefu.Invalid, nil, "%s has %d pieces but %s says the model's vocab_size is %d: the vocabulary does not belong to this model", vocabPath, tok.VocabSize(), cfgPath, cfg.VocabSize)
	}

	labels, err := cfg.labels(cfgPath)
	if err != nil {
		return hfFolder{}, err
	}

	meta := Meta{
		Version:     "hf:" + folderName(dir),
		MaxLen:      hfMaxLen,
		Hidden:      cfg.HiddenSize,
		Temperature: 1,
		OutOfScope:  OutOfScope,
		Lowercase:   &lower,
		NFKC:        new(bool),
	}
	if n := cfg.MaxPositionEmbeddings; n > 0 {
		meta.MaxLen = min(meta.MaxLen, n)
	}
	if n := tc.ModelMaxLength; n != nil && *n > 0 {
		meta.MaxLen = int(min(float64(meta.MaxLen), *n))
	}
	if meta.MaxLen < 2 {
		return hfFolder{}, loadError(kefu.Invalid, nil, "%s (max_position_embeddings) and %s (model_max_length) allow %d tokens a message, fewer than [CLS] and [SEP]", cfgPath, tcPath, meta.MaxLen)
	}
	if err := readKefuJSON(filepath.Join(dir, "kefu.json"), &meta); err != nil {
		return hfFolder{}, err
	}

	return hfFolder{meta: meta, tok: tok, labels: labels, cfgPath: cfgPath}, nil
}

// labels returns the label names in id order, from id2label, or from label2id without it.
func (cfg *hfConfig) labels(path string) ([]string, error) {
	byID := cfg.ID2Label
	if len(byID) == 0 {
		byID = make(map[string]string, len(cfg.Label2ID))
		for name, id := range cfg.Label2ID {
			key := strconv.Itoa(id)
			if prev, dup := byID[key]; dup {
				return nil, loadError(kefu.Invalid, nil, "%s: label2id gives id %d to both %q and %q", path, id, prev, name)
			}
			byID[key] = name
		}
	}
	labels := make([]string, len(byID))
	seen := make(map[string]int, len(byID))
	for key, name := range byID {
		id, err := strconv.Atoi(key)
		if err != nil || id < 0 || id >= len(byID) {
			return nil, loadError(kefu.Invalid, nil, "%s: label id %q is not one of 0 to %d", path, key, len(byID)-1)
		}
		if name == "" {
			return nil, loadError(kefu.Invalid, nil, "%s: label %d has no name", path, id)
		}
		if prev, dup := seen[name]; dup {
			return nil, loadError(kefu.Invalid, nil, "%s: ids %d and %d are both labelled %q", path, min(prev, id), max(prev, id), name)
		}
		seen[name] = id
		labels[id] = name
	}
	return labels, nil
}

// readKefuJSON applies the optional kefu.json at path to meta.
func readKefuJSON(path string, meta *Meta) error {
	if !isFile(path) {
		return nil
	}
	b, err := readFile(path)
	if err != nil {
		return err
	}
	var k kefuJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields() // a misspelt "threshhold" must not silently mean 0
	if err := dec.Decode(&k); err != nil {
		return loadError(kefu.Invalid, err, "%s is not valid (it may set version, temperature and threshold)", path)
	}
	if k.Version != nil {
		if *k.Version == "" {
			return loadError(kefu.Invalid, nil, "%s: version is empty", path)
		}
		meta.Version = *k.Version
	}
	if k.Temperature != nil {
		if *k.Temperature <= 0 {
			return loadError(kefu.Invalid, nil, "%s: temperature is %g, want more than 0", path, *k.Temperature)
		}
		meta.Temperature = *k.Temperature
	}
	if k.Threshold != nil {
		if *k.Threshold < 0 || *k.Threshold > 1 {
			return loadError(kefu.Invalid, nil, "%s: threshold is %g, want 0 to 1", path, *k.Threshold)
		}
		meta.Threshold = *k.Threshold
	}
	return nil
}

// folderName is the last element of dir, made absolute so that "." has a name.
func folderName(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return filepath.Base(dir)
}
