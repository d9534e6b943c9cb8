"""Helpers for the language server tests: the client's copy of a document, kept in step with the server's."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient


@dataclass
class Buffer:
    """The client's side of one open document: edits go to the server as incremental changes."""

    client: LanguageClient
    path: Path
    text: str
    version: int = 1

    @property
    def uri(self) -> str:
        return self.path.as_uri()

    def open(self, language_id: str = "python") -> None:
        self.path.write_text(self.text, encoding="utf-8")
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=self.uri, language_id=language_id, version=self.version, text=self.text)))

    def edit(self, start: tuple[int, int], end: tuple[int, int], new: str) -> None:
        lines = self.text.splitlines(keepends=True)
        a = sum(len(x) for x in lines[:start[0]]) + start[1]
        b = sum(len(x) for x in lines[:end[0]]) + end[1]
        self.text = self.text[:a] + new + self.text[b:]
        self.version += 1
        rng = types.Range(types.Position(*start), types.Position(*end))
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=self.uri, version=self.version),
            content_changes=[types.TextDocumentContentChangePartial(range=rng, text=new)]))

    def replace_all(self, new: str) -> None:
        self.text = new
        self.version += 1
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=self.uri, version=self.version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=new)]))

    async def save(self) -> list[types.Diagnostic]:
        """Write the file, send didSave and wait for the server's answer (its hints for this file)."""
        self.path.write_text(self.text, encoding="utf-8")
        self.client.text_document_did_save(types.DidSaveTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=self.uri)))
        return await self.hints()

    async def hints(self) -> list[types.Diagnostic]:
        """Wait (at most a minute) for the server to publish diagnostics for this document."""
        async def wait() -> list[types.Diagnostic]:
            while True:
                params = await self.client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
                if params.uri == self.uri:
                    return list(params.diagnostics)

        return await asyncio.wait_for(wait(), 60)

    def close(self) -> None:
        self.client.text_document_did_close(types.DidCloseTextDocumentParams(
            types.TextDocumentIdentifier(uri=self.uri)))


async def command(client: LanguageClient, name: str, *args: Any) -> Any:
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(command=name,
                                                                                   arguments=list(args)))


def rng(start: tuple[int, int], end: tuple[int, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"start": {"line": start[0], "character": start[1]}}
    if end is not None:
        out["end"] = {"line": end[0], "character": end[1]}
    return out

