// Regenerates config/gatewayctl.schema.json from the validator's spec.
import { writeFileSync } from 'node:fs';
import { jsonSchemaText } from '../dist/src/config/json-schema.js';
writeFileSync(new URL('../config/gatewayctl.schema.json', import.meta.url), jsonSchemaText());
console.log('wrote config/gatewayctl.schema.json');
