"""The classes inside real LangChain runnables: a RAG chain and RunnableWithMessageHistory."""

from __future__ import annotations

from typing import Any

import pytest
from agentmem_plugin import MemoryManager
from langchain_core._api.deprecation import LangChainDeprecationWarning
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.runnables.history import RunnableWithMessageHistory

from langchain_agentmem import AgentMemChatMessageHistory, AgentMemRetriever, AgentMemVectorStore


class PromptRecorder(BaseCallbackHandler):
    """Records the messages every chat model call received."""

    def __init__(self) -> None:
        self.prompts: list[list[BaseMessage]] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.prompts.extend(messages)


def format_docs(docs: list[Document]) -> str:
    return "\n".join(doc.page_content for doc in docs)


RAG_PROMPT = ChatPromptTemplate.from_messages(
    [("system", "Answer from this context:\n{context}"), ("human", "{question}")]
)


def test_rag_chain_over_the_retriever_sends_the_retrieved_text_to_the_model(semantic_manager):
    semantic_manager.store_many(
        {
            "wifi": "The office wifi password is printed under the coffee machine",
            "parking": "Visitors park on level minus two of the garage",
            "lunch": "The canteen serves lunch from noon until two",
        },
        "long_term",
    )
    retriever = AgentMemRetriever(memory=semantic_manager, k=1, mode="semantic")
    llm = FakeListChatModel(responses=["Look under the coffee machine."])
    chain = (
        {"context": retriever | format_docs, "question": RunnablePassthrough()}
        | RAG_PROMPT
        | llm
        | StrOutputParser()
    )
    recorder = PromptRecorder()
    answer = chain.invoke("how do I get on the wireless network?", config={"callbacks": [recorder]})
    assert answer == "Look under the coffee machine."
    [prompt] = recorder.prompts
    assert "The office wifi password is printed under the coffee machine" in prompt[0].content
    assert "garage" not in prompt[0].content and "canteen" not in prompt[0].content
    assert prompt[1].content == "how do I get on the wireless network?"


async def test_rag_chain_over_the_vector_store_retriever_async(fake_embeddings):
    with AgentMemVectorStore(fake_embeddings) as store:
        store.add_texts(
            ["Mount Fuji is 3776 m high", "The Nile is 6650 km long"], ids=["fuji", "nile"]
        )
        retriever = store.as_retriever(search_kwargs={"k": 1})
        chain = (
            {"context": retriever | RunnableLambda(format_docs), "question": RunnablePassthrough()}
            | RAG_PROMPT
            | FakeListChatModel(responses=["3776 m"])
        )
        recorder = PromptRecorder()
        reply = await chain.ainvoke("The Nile is 6650 km long", config={"callbacks": [recorder]})
    assert reply.content == "3776 m"
    assert "The Nile is 6650 km long" in recorder.prompts[0][0].content
    assert "Fuji" not in recorder.prompts[0][0].content


def make_chat(manager: MemoryManager, llm: FakeListChatModel) -> RunnableWithMessageHistory:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are helpful."), MessagesPlaceholder("history"), ("human", "{question}")]
    )
    # Upstream deprecates RunnableWithMessageHistory (LangGraph persistence instead); it still works.
    with pytest.warns(
        LangChainDeprecationWarning, match="RunnableWithMessageHistory is deprecated"
    ):
        return RunnableWithMessageHistory(
            prompt | llm,
            lambda session_id: AgentMemChatMessageHistory(session_id, manager=manager),
            input_messages_key="question",
            history_messages_key="history",
        )


def test_runnable_with_message_history_remembers_per_session_across_restarts(tmp_path):
    recorder = PromptRecorder()
    llm = FakeListChatModel(responses=["Hi Ada!", "You are Ada.", "I don't know yet."])
    with MemoryManager(storage_path=tmp_path / "chat") as mm:
        chat = make_chat(mm, llm)
        s1 = {"configurable": {"session_id": "s1"}, "callbacks": [recorder]}
        assert chat.invoke({"question": "I am Ada"}, config=s1).content == "Hi Ada!"
        assert chat.invoke({"question": "Who am I?"}, config=s1).content == "You are Ada."
        s2 = {"configurable": {"session_id": "s2"}, "callbacks": [recorder]}
        assert chat.invoke({"question": "Who am I?"}, config=s2).content == "I don't know yet."
    second, third = recorder.prompts[1], recorder.prompts[2]
    assert [m.content for m in second] == ["You are helpful.", "I am Ada", "Hi Ada!", "Who am I?"]
    assert [m.content for m in third] == ["You are helpful.", "Who am I?"]  # s2 does not see s1
    with MemoryManager(storage_path=tmp_path / "chat") as mm:  # a new process, the same directory
        saved = AgentMemChatMessageHistory("s1", manager=mm).messages
    assert saved == [
        HumanMessage("I am Ada"),
        AIMessage("Hi Ada!", id=saved[1].id),
        HumanMessage("Who am I?"),
        AIMessage("You are Ada.", id=saved[3].id),
    ]


async def test_runnable_with_message_history_async():
    with MemoryManager() as mm:
        chat = make_chat(mm, FakeListChatModel(responses=["one", "two"]))
        config = {"configurable": {"session_id": "a"}}
        await chat.ainvoke({"question": "first"}, config=config)
        await chat.ainvoke({"question": "second"}, config=config)
        contents = [m.content for m in AgentMemChatMessageHistory("a", manager=mm).messages]
    assert contents == ["first", "one", "second", "two"]
