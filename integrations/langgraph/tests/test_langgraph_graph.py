"""A real compiled StateGraph whose nodes remember and recall through the store; a fake chat model, no network."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.config import get_store
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore
from pydantic import Field

from agentmem_langgraph import AgentMemStore


class RecordingChatModel(FakeListChatModel):
    """A FAKE chat model (canned replies) that records the messages it was given."""

    received: list[list[BaseMessage]] = Field(default_factory=list)

    def _call(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> str:
        self.received.append(list(messages))
        return super()._call(messages, *args, **kwargs)


@dataclass
class UserContext:
    user_id: str


def build_graph(store: BaseStore, model: RecordingChatModel) -> Any:
    """Node 1 stores facts the user states ("remember: ..."); node 2 recalls memories into the prompt."""

    def remember(state: MessagesState, runtime: Runtime[UserContext]) -> dict[str, Any]:
        text = str(state["messages"][-1].content)
        if text.lower().startswith("remember:"):
            fact = text.split(":", 1)[1].strip()
            key = hashlib.sha256(fact.encode()).hexdigest()[:16]
            assert runtime.store is not None
            runtime.store.put(("memories", runtime.context.user_id), key, {"text": fact})
        return {}

    def respond(state: MessagesState, runtime: Runtime[UserContext]) -> dict[str, Any]:
        store = get_store()  # the other way a node reaches the store
        question = str(state["messages"][-1].content)
        hits = store.search(("memories", runtime.context.user_id), query=question, limit=1)
        facts = "\n".join(f"- {hit.value['text']}" for hit in hits) or "- nothing yet"
        prompt = [SystemMessage(f"What you know about the user:\n{facts}"), *state["messages"]]
        return {"messages": [model.invoke(prompt)]}

    graph = StateGraph(MessagesState, context_schema=UserContext)
    graph.add_node("remember", remember)
    graph.add_node("respond", respond)
    graph.add_edge(START, "remember")
    graph.add_edge("remember", "respond")
    graph.add_edge("respond", END)
    return graph.compile(store=store)


def _system_prompt(model: RecordingChatModel) -> str:
    return str(model.received[-1][0].content)


def test_graph_remembers_across_runs_and_store_objects(tmp_path: Path, minilm: str) -> None:
    index = {"embed": minilm, "dims": 384}
    model = RecordingChatModel(
        responses=["Noted!", "Noted!", "How about a green curry?", "Hi Bob!"]
    )
    with AgentMemStore(tmp_path / "memories", index=index) as store:  # type: ignore[arg-type]
        graph = build_graph(store, model)
        alice = UserContext(user_id="alice")
        graph.invoke(
            {"messages": [HumanMessage("remember: I am vegetarian and I love Thai curries")]},
            context=alice,
        )
        assert "vegetarian" in _system_prompt(model)  # recalled right after being stored
        graph.invoke(
            {"messages": [HumanMessage("remember: my sister lives in Lisbon")]}, context=alice
        )
        assert "Lisbon" in _system_prompt(model)
        assert store.list_namespaces() == [("memories", "alice")]

    # A new process-lifetime object over the same directory: the memory is still there, found by meaning.
    with AgentMemStore(tmp_path / "memories", index=index) as store:  # type: ignore[arg-type]
        graph = build_graph(store, model)
        out = graph.invoke(
            {"messages": [HumanMessage("What should I cook for dinner tonight?")]},
            context=UserContext(user_id="alice"),
        )
        assert out["messages"][-1].content == "How about a green curry?"
        prompt = _system_prompt(model)
        assert "I am vegetarian and I love Thai curries" in prompt
        assert "Lisbon" not in prompt  # limit=1: the relevant memory won

        # Namespace isolation: Bob's run never sees Alice's memories.
        graph.invoke(
            {"messages": [HumanMessage("What should I cook for dinner tonight?")]},
            context=UserContext("bob"),
        )
        prompt = _system_prompt(model)
        assert "nothing yet" in prompt
        assert "vegetarian" not in prompt and "Lisbon" not in prompt
        assert store.search(("memories", "bob")) == []


async def test_graph_async_invocation_with_store_injection(tmp_path: Path) -> None:
    """The ``store`` parameter injection and ``ainvoke`` (the store's async path)."""

    async def note(state: MessagesState, store: BaseStore) -> dict[str, Any]:
        await store.aput(("notes",), "last", {"text": str(state["messages"][-1].content)})
        item = await store.aget(("notes",), "last")
        assert item is not None
        return {"messages": [SystemMessage(f"stored: {item.value['text']}")]}

    graph = StateGraph(MessagesState)
    graph.add_node("note", note)
    graph.add_edge(START, "note")
    with AgentMemStore(tmp_path / "s") as store:
        out = await graph.compile(store=store).ainvoke({"messages": [HumanMessage("buy oat milk")]})
        assert out["messages"][-1].content == "stored: buy oat milk"
        assert store.get(("notes",), "last").value == {"text": "buy oat milk"}  # type: ignore[union-attr]


def test_persistent_across_processes(tmp_path: Path) -> None:
    """One process writes (and exits); this process reads everything back, timestamps included."""
    where = tmp_path / "shared"
    script = textwrap.dedent(
        f"""
        from agentmem_langgraph import AgentMemStore
        with AgentMemStore({str(where)!r}) as store:
            store.put(("users", "u1"), "prefs", {{"theme": "dark", "text": "likes jazz concerts"}})
            store.put(("users", "u/2"), "prefs", {{"theme": "light"}}, ttl=60)
            store.put(("users", "u1"), "tmp", {{"v": 1}})
            store.delete(("users", "u1"), "tmp")
            print(store.get(("users", "u1"), "prefs").created_at.isoformat())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    created = done.stdout.strip().splitlines()[-1]
    with AgentMemStore(where) as store:
        item = store.get(("users", "u1"), "prefs")
        assert item is not None and item.value["theme"] == "dark"
        assert item.created_at.isoformat() == created
        assert store.get(("users", "u1"), "tmp") is None
        assert store.get(("users", "u/2"), "prefs").value == {"theme": "light"}  # type: ignore[union-attr]
        assert store.list_namespaces() == [("users", "u/2"), ("users", "u1")]
        assert store.search(("users",), query="jazz")[0].key == "prefs"
