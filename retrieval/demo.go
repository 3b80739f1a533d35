package retrieval

import (
	_ "embed"
	"fmt"
	"sort"

	"github.com/goccy/go-yaml"
)

//go:embed demo/knowledge.yaml
var demoYAML []byte

type fileEntry struct {
	Title      string   `yaml:"title"`
	Question   string   `yaml:"question"`
	Alternates []string `yaml:"alternates"`
	Answer     string   `yaml:"answer"`
	Link       string   `yaml:"link"`
}

// ParseYAML reads a knowledge file: `entries`, each a `key` and one block per language code
// with title, question, alternates, answer and link. Errors name the line.
func ParseYAML(data []byte) ([]Entry, error) {
	var doc struct {
		Entries []map[string]any `yaml:"entries"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("retrieval: knowledge file: %s", yaml.FormatError(err, false, true))
	}
	var out []Entry
	for i, raw := range doc.Entries {
		key, _ := raw["key"].(string)
		if key == "" {
			return nil, fmt.Errorf("retrieval: knowledge file: entry %d has no key", i+1)
		}
		langs := make([]string, 0, len(raw))
		for k := range raw {
			if k != "key" {
				langs = append(langs, k)
			}
		}
		sort.Strings(langs)
		for _, lang := range langs {
			b, err := yaml.Marshal(raw[lang])
			if err != nil {
				return nil, err
			}
			var fe fileEntry
			if err := yaml.UnmarshalWithOptions(b, &fe, yaml.Strict()); err != nil {
				return nil, fmt.Errorf("retrieval: knowledge file: entry %q, language %q: %s", key, lang, yaml.FormatError(err, false, false))
			}
			if fe.Question == "" || fe.Answer == "" {
				return nil, fmt.Errorf("retrieval: knowledge file: entry %q, language %q needs a question and an answer", key, lang)
			}
			out = append(out, Entry{Key: key, Language: lang, Title: fe.Title, Question: fe.Question,
				Alternates: fe.Alternates, Answer: fe.Answer, Link: fe.Link})
		}
	}
	return out, nil
}

// DemoEntries is the demo knowledge base of an online shop, in Chinese and English.
func DemoEntries() ([]Entry, error) { return ParseYAML(demoYAML) }
