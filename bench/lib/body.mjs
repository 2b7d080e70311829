// The response every upstream answers with: a 300-byte JSON document, the
// same shape from the primary and from the shadows, one field different
// (what a dark-launched version would change).
export const BODY_BYTES = 300;

export function jsonBody(version) {
  const doc = {
    id: 42,
    name: 'Widget deluxe',
    version,
    price: { amount: 1999, currency: 'EUR' },
    tags: ['gadget', 'blue', 'sale'],
    stock: 17,
    updatedAt: '2026-01-01T00:00:00Z',
    pad: '',
  };
  const base = JSON.stringify(doc).length;
  if (base > BODY_BYTES) throw new Error('body template longer than the target size');
  doc.pad = 'x'.repeat(BODY_BYTES - base);
  const text = JSON.stringify(doc);
  if (text.length !== BODY_BYTES) throw new Error(`body is ${text.length} bytes, not ${BODY_BYTES}`);
  return text;
}

export const PRIMARY_BODY = jsonBody('v1');
export const SHADOW_BODY = jsonBody('v2');
