// Package retrieval is the knowledge base: entries (a question, its alternative phrasings, an
// answer, per language, translations linked by key), their vectors in pgvector, and the
// search that answers a customer's question with the best entry and its source.
//
// Every phrasing of an entry is embedded by an Embedder (by default the ONNX sentence encoder
// from nlu) and stored with the embedder's id, so changing the model never mixes vector spaces.
// Answer searches all languages (the encoder places translations close together), then
// answers in the customer's language where the entry has it.
package retrieval
