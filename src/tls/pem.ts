/**
 * Reading certificate and key files, and saying exactly what is wrong with
 * them. `validate`, `serve` and every certificate rotation use these same
 * functions, so a pair that validates is a pair that loads.
 *
 * Messages are sentences about the file as the caller names it (the path
 * as written in the config for `validate`, the absolute path in logs).
 */
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { NotRegularFileError, readRegularFile } from '../config/regular-file.js';

/** Far above any real PEM bundle (a CA bundle is ~250 kB). */
export const MAX_PEM_BYTES = 1024 * 1024;
/** Certificates expiring sooner than this draw a warning. */
export const EXPIRY_WARNING_DAYS = 14;
const DAY_MS = 86_400_000;

export interface FileRef {
  /** Path to read. */
  readonly path: string;
  /** How messages name it. */
  readonly shown: string;
}

export interface Problem {
  /** Which file of the pair the problem belongs to. */
  readonly at: 'cert' | 'key';
  readonly severity: 'error' | 'warning';
  readonly code: string;
  readonly message: string;
}

export interface CertificateInfo {
  /** DNS names (lower-case, wildcards as `*.x`) and IP addresses it is valid for. */
  readonly names: readonly string[];
  /** The name metrics and logs use: first DNS name, else the common name. */
  readonly primaryName: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SHA-256 fingerprint of the leaf, colon-separated hex. */
  readonly fingerprint: string;
  readonly subject: string;
}

export interface LoadedPair extends CertificateInfo {
  /** PEM text of the certificate chain, leaf first. */
  readonly cert: string;
  /** PEM text of the private key. */
  readonly key: string;
}

export type PairResult =
  | { readonly ok: true; readonly pair: LoadedPair; readonly warnings: readonly Problem[] }
  | { readonly ok: false; readonly problems: readonly Problem[] };

interface PemBlock {
  readonly label: string;
  readonly text: string;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

export function pemBlocks(text: string): PemBlock[] {
  return [...text.matchAll(PEM_BLOCK)].map((m) => ({ label: m[1]!, text: m[0] }));
}

const isKeyLabel = (label: string) => label.endsWith('PRIVATE KEY');

/** The file's text, or a problem: missing, unreadable, a directory, empty, too big. */
export function readPemFile(file: FileRef, at: Problem['at']): { text: string } | { problem: Problem } {
  const fail = (message: string) => ({ problem: { at, severity: 'error' as const, code: 'tls-file', message: `"${file.shown}" ${message}` } });
  try {
    const read = readRegularFile(file.path, MAX_PEM_BYTES);
    if ('oversize' in read) return fail(`is ${read.oversize} bytes; PEM files are far smaller (is this the right file?)`);
    const text = read.bytes.toString('utf8');
    if (text.trim() === '') return fail('is empty');
    return { text };
  } catch (err) {
    if (err instanceof NotRegularFileError) return fail(err.message);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return fail('does not exist');
    if (code === 'EACCES' || code === 'EPERM') return fail('cannot be read: permission denied');
    return fail(`cannot be read: ${(err as Error).message}`);
  }
}

/** Parses every certificate in a PEM text, leaf first. */
export function parseCertificates(text: string, file: FileRef, at: Problem['at'] = 'cert'): X509Certificate[] | Problem {
  const fail = (message: string): Problem => ({ at, severity: 'error', code: 'tls-cert', message: `"${file.shown}" ${message}` });
  const blocks = pemBlocks(text);
  const certs = blocks.filter((b) => b.label === 'CERTIFICATE');
  if (certs.length === 0) {
    if (blocks.some((b) => isKeyLabel(b.label))) return fail('holds a private key, not a certificate (are cert and key swapped?)');
    return fail('holds no PEM certificate (a "-----BEGIN CERTIFICATE-----" block)');
  }
  const out: X509Certificate[] = [];
  for (const [i, block] of certs.entries()) {
    try {
      out.push(new X509Certificate(block.text));
    } catch {
      return fail(certs.length === 1 ? 'holds a certificate that does not parse' : `holds a certificate (number ${i + 1}) that does not parse`);
    }
  }
  return out;
}

function parseKey(text: string, file: FileRef): KeyObject | Problem {
  const fail = (message: string): Problem => ({ at: 'key', severity: 'error', code: 'tls-key', message: `"${file.shown}" ${message}` });
  const blocks = pemBlocks(text);
  const keys = blocks.filter((b) => isKeyLabel(b.label));
  if (keys.length === 0) {
    if (blocks.some((b) => b.label === 'CERTIFICATE')) return fail('holds a certificate, not a private key (are cert and key swapped?)');
    return fail('holds no PEM private key (a "-----BEGIN PRIVATE KEY-----" block)');
  }
  if (keys.length > 1) return fail(`holds ${keys.length} private keys; keep exactly one per file`);
  const block = keys[0]!;
  if (block.label === 'ENCRYPTED PRIVATE KEY' || /Proc-Type:\s*4,ENCRYPTED/.test(block.text)) {
    return fail(`holds an encrypted private key; passphrases are not supported (decrypt it: openssl pkey -in ${file.shown} -out PLAIN.key)`);
  }
  try {
    return createPrivateKey(block.text);
  } catch {
    return fail('holds a private key that does not parse');
  }
}

/** Names, dates and fingerprint of a certificate. */
export function describeCertificate(cert: X509Certificate): CertificateInfo & { readonly hasSubjectAltName: boolean } {
  const names: string[] = [];
  for (const entry of splitAltNames(cert.subjectAltName ?? '')) {
    if (entry.startsWith('DNS:')) names.push(entry.slice(4).toLowerCase());
    else if (entry.startsWith('IP Address:')) names.push(entry.slice(11).toLowerCase());
  }
  const commonName = /^CN=(.*)$/m.exec(cert.subject)?.[1]?.trim();
  const hasSubjectAltName = names.length > 0;
  if (!hasSubjectAltName && commonName) names.push(commonName.toLowerCase());
  const primaryName = names.find((n) => isIP(n) === 0) ?? names[0] ?? commonName ?? cert.serialNumber;
  return {
    names,
    primaryName,
    notBefore: new Date(Date.parse(cert.validFrom)),
    notAfter: new Date(Date.parse(cert.validTo)),
    fingerprint: cert.fingerprint256,
    subject: cert.subject.replace(/\n/g, ', '),
    hasSubjectAltName,
  };
}

/** `DNS:a, DNS:b, IP Address:1.2.3.4`; values with commas come quoted. */
function splitAltNames(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:,\s*|$)/g)) {
    const value = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
    out.push(`${m[1]!.trim()}:${value.trim()}`);
  }
  return out;
}

export function formatDate(date: Date): string {
  return date.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

/** Expiry problems of a certificate at `now`: expired (error), not yet valid or expiring soon (warnings). */
export function validityProblems(info: CertificateInfo, file: FileRef, now: number, at: Problem['at'] = 'cert'): Problem[] {
  const label = `certificate "${file.shown}" (${info.primaryName})`;
  if (info.notAfter.getTime() <= now) {
    return [{ at, severity: 'error', code: 'tls-expired', message: `${label} expired on ${formatDate(info.notAfter)}` }];
  }
  const problems: Problem[] = [];
  if (info.notBefore.getTime() > now) {
    problems.push({
      at,
      severity: 'warning',
      code: 'tls-not-yet-valid',
      message: `${label} is not valid until ${formatDate(info.notBefore)}; clients refuse it until then`,
    });
  }
  const days = Math.floor((info.notAfter.getTime() - now) / DAY_MS);
  if (days < EXPIRY_WARNING_DAYS) {
    problems.push({
      at,
      severity: 'warning',
      code: 'tls-expiring',
      message: `${label} expires in ${days === 0 ? 'less than a day' : `${days} day${days === 1 ? '' : 's'}`} (${formatDate(info.notAfter)}); renew it`,
    });
  }
  return problems;
}

/**
 * Reads and checks a certificate and its key: both exist and parse, the key
 * belongs to the certificate, the certificate has not expired. Warnings
 * (expiring soon, not yet valid, no subjectAltName) do not stop it loading.
 */
export function loadPair(certFile: FileRef, keyFile: FileRef, now = Date.now()): PairResult {
  const problems: Problem[] = [];
  const certRead = readPemFile(certFile, 'cert');
  const keyRead = readPemFile(keyFile, 'key');
  let certs: X509Certificate[] | undefined;
  let key: KeyObject | undefined;
  if ('problem' in certRead) problems.push(certRead.problem);
  else {
    const parsed = parseCertificates(certRead.text, certFile);
    if (Array.isArray(parsed)) certs = parsed;
    else problems.push(parsed);
  }
  if ('problem' in keyRead) problems.push(keyRead.problem);
  else {
    const parsed = parseKey(keyRead.text, keyFile);
    if ('at' in parsed) problems.push(parsed);
    else key = parsed;
  }
  if (!certs || !key) return { ok: false, problems };

  const leaf = certs[0]!;
  if (!leaf.checkPrivateKey(key)) {
    problems.push({
      at: 'key',
      severity: 'error',
      code: 'tls-key-mismatch',
      message: `"${keyFile.shown}" is not the private key of the certificate in "${certFile.shown}"`,
    });
  }
  const info = describeCertificate(leaf);
  const warnings: Problem[] = [];
  for (const p of validityProblems(info, certFile, now)) (p.severity === 'error' ? problems : warnings).push(p);
  if (!info.hasSubjectAltName) {
    warnings.push({
      at: 'cert',
      severity: 'warning',
      code: 'tls-no-san',
      message: `certificate "${certFile.shown}" has no subjectAltName; clients ignore its common name "${info.primaryName}" and will refuse it`,
    });
  }
  if (problems.length > 0) return { ok: false, problems };
  const { hasSubjectAltName: _unused, ...rest } = info;
  return {
    ok: true,
    pair: { ...rest, cert: certs.map((c) => c.toString()).join(''), key: key.export({ type: 'pkcs8', format: 'pem' }) as string },
    warnings,
  };
}

/**
 * Reads a CA bundle for verifying an upstream: it must hold at least one
 * certificate, and not only expired ones.
 */
export function loadCaBundle(file: FileRef, now = Date.now()): { ok: true; pem: string } | { ok: false; problem: Problem } {
  const read = readPemFile(file, 'cert');
  if ('problem' in read) return { ok: false, problem: read.problem };
  const parsed = parseCertificates(read.text, file);
  if (!Array.isArray(parsed)) return { ok: false, problem: parsed };
  if (parsed.every((c) => Date.parse(c.validTo) <= now)) {
    const last = new Date(Math.max(...parsed.map((c) => Date.parse(c.validTo))));
    const message = `"${file.shown}" holds only expired certificates (the last expired on ${formatDate(last)}); nothing would verify`;
    return { ok: false, problem: { at: 'cert', severity: 'error', code: 'tls-expired', message } };
  }
  return { ok: true, pem: parsed.map((c) => c.toString()).join('') };
}

/** Short identity of PEM material, for logs and change detection. */
export function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}
