"""Beanie documents and the MongoDB connection they live on."""
