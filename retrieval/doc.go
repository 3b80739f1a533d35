// Package retrieval is the knowledge base: entries (a question, its alternative phrasings, an
// answer, per language, translations linked by key), their vectors in pgvector, their BM25
// terms, and the search that answers a customer's question with the best entry and its source.
//
// Every phrasing of an entry is embedded by an Embedder (by default the ONNX sentence encoder
// from nlu) and stored with the embedder's id, so changing the model never mixes vector spaces;
// each embedder's vectors have an HNSW index. The lexical side is BM25 over terms made in Go
// (Chinese segmented by gse, plus character bigrams). Search fuses the two rankings by
// reciprocal rank (SearchOptions), then answers in the customer's language where the entry has
// it, and only when the entry's own evidence reaches the threshold. Import and Evaluate load any
// FAQ corpus and measure retrieval on any query set. OpenAIEmbedder embeds through an
// OpenAI-compatible endpoint; Generator words a grounded, cited answer from the passages found
// with an OpenAI-compatible chat model, streaming it.
package retrieval
