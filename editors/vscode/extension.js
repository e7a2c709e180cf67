// The storyc extension: starts `storyc lsp` and connects it to VS Code. Everything the
// editor knows about a story (diagnostics, hover, completion, definitions, rename,
// formatting, quick fixes) comes from the language server; highlighting comes from the
// TextMate grammar in syntaxes/.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace
    .getConfiguration("storyc")
    .get("server.command", ["storyc", "lsp"]);
  const run = { command: command[0], args: command.slice(1), transport: TransportKind.stdio };
  client = new LanguageClient(
    "storyc",
    "storyc",
    { run, debug: run },
    {
      documentSelector: [{ scheme: "file", language: "story" }],
      synchronize: {
        // Stories and media changed on disk (a checkout, another editor) are re-checked.
        fileEvents: vscode.workspace.createFileSystemWatcher(
          "**/*.{story,png,jpg,jpeg,mp4,mov}"
        ),
      },
    }
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
