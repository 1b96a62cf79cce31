"""Provider adapters (LLM, image search, TTS): one interface per family, chosen per node by config."""
