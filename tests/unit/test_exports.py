from __future__ import annotations

import json
import subprocess
import sys

import agentmem_plugin

EXPECTED_ALL = [
    "AgentMemory",
    "HierarchicalMemory",
    "MemoryFederation",
    "SharedMemory",
    "WorkingMemory",
    "MAX_KEY_LENGTH",
    "AccessDeniedError",
    "AgentMemError",
    "ArchiveTier",
    "BufferTier",
    "CompressedMemory",
    "ConsolidationPolicy",
    "DatabaseMemory",
    "DebuggableMemory",
    "EmbeddingError",
    "ImportanceConsolidationPolicy",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidKeyError",
    "JsonFileTier",
    "KeyNotFoundError",
    "LRUEvictionPolicy",
    "Memory",
    "MemoryEntry",
    "MemoryManager",
    "MissingDependencyError",
    "OptimizedMemory",
    "PersistentMemory",
    "BackendUnavailableError",
    "IndexInUseError",
    "ReadOnlyStoreError",
    "ResilientMemory",
    "SchemaVersionError",
    "SearchIndex",
    "SemanticMemory",
    "SerializationError",
    "SqliteTier",
    "StorageError",
    "StoreCorruptError",
    "TTLEvictionPolicy",
    "Tier",
    "__version__",
]

HEAVY = ["torch", "chromadb", "sentence_transformers", "langchain_core", "sqlite_utils"]


def test_all_is_pinned() -> None:
    assert len(agentmem_plugin.__all__) == len(set(agentmem_plugin.__all__))
    assert sorted(agentmem_plugin.__all__) == sorted(EXPECTED_ALL)


def test_every_exported_name_exists() -> None:
    for name in agentmem_plugin.__all__:
        assert hasattr(agentmem_plugin, name), name
    assert isinstance(agentmem_plugin.__version__, str)


def test_import_does_not_pull_heavy_dependencies() -> None:
    code = (
        "import json, sys; import agentmem_plugin; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout) == []
