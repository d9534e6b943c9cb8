/**
 * Forwards what other extensions publish as diagnostics to the Redline server (`redline/diagnostics`); the server
 * keeps those that fall on model-written lines and harvests them when the file is saved and unmodified.
 */

import * as vscode from 'vscode';
import { LanguageClient } from 'vscode-languageclient/node';
import { FORWARDED_DIAGNOSTICS, ForwardedDiagnostics } from './messages';

const OWN_SOURCE = 'redline';

export function forwardDiagnostics(client: LanguageClient, delayMs = 300): vscode.Disposable {
  const pending = new Map<string, vscode.Uri>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = async (): Promise<void> => {
    timer = undefined;
    const uris = [...pending.values()];
    pending.clear();
    for (const uri of uris) {
      if (!client.isRunning()) return;
      const theirs = vscode.languages.getDiagnostics(uri).filter((d) => d.source !== OWN_SOURCE);
      const params: ForwardedDiagnostics = {
        uri: client.code2ProtocolConverter.asUri(uri),
        diagnostics: await client.code2ProtocolConverter.asDiagnostics(theirs),
        source: 'vscode',
      };
      await client.sendNotification(FORWARDED_DIAGNOSTICS, params);
    }
  };
  return vscode.languages.onDidChangeDiagnostics((e) => {
    for (const uri of e.uris) {
      if (uri.scheme === 'file') pending.set(uri.toString(), uri);
    }
    if (pending.size && !timer) timer = setTimeout(() => void flush(), delayMs);
  });
}
