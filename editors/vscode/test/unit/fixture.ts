/** The shared message fixture, `tests/editors/messages.json` (checked against the real server by pytest). */
import { readFileSync } from 'fs';
import * as path from 'path';

// out/test/unit → repository root
const FILE = path.resolve(__dirname, '../../../../../tests/editors/messages.json');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const fixture: any = JSON.parse(readFileSync(FILE, 'utf8'));
