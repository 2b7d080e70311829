// Regenerates the config reference section of README.md from the validator's spec.
import { readFileSync, writeFileSync } from 'node:fs';
import { withReference } from '../dist/src/config/reference.js';
const file = new URL('../README.md', import.meta.url);
writeFileSync(file, withReference(readFileSync(file, 'utf8')));
console.log('updated the config reference in README.md');
