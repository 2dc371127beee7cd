"""BGE models on Milvus (Milvus Lite or a server): dense + sparse hybrid search with ColBERT
MaxSim reranking. ``pymilvus`` is imported only when a store first talks to Milvus."""

from bge_milvus.index import MilvusIndex
from bge_milvus.store import MilvusStore

__all__ = ["MilvusIndex", "MilvusStore"]
