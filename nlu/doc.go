// Package nlu understands one customer message: which intent it expresses, how sure the model
// is (a temperature-calibrated probability), whether it is out of scope, and its language. It
// also turns text into sentence embeddings for retrieval.
//
// The model is a small BERT-architecture encoder trained by training/ and exported to ONNX;
// it runs in ONNX Runtime through onnxruntime_go. Load also opens a user's own Hugging Face
// BERT export (config.json, vocab.txt, model.onnx): a fine-tuned classifier, or an encoder that
// only embeds. LoadEncoder opens a sentence encoder (models/encoder, trained by
// training/train_encoder.py for knowledge retrieval, or a sentence-transformers export), which
// only embeds. nlu knows nothing of sessions or SQL.
//
//	if err := nlu.InitRuntime(nlu.FindRuntime()); err != nil { … }
//	c, err := nlu.Load("models/intent")
//	res, err := c.Understand(ctx, "我想退货")
//	// res.Intent == "return_item", res.Confidence ≈ 0.9, res.Language == "zh"
package nlu
