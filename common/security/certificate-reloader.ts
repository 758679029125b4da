/**
 * Feeds gRPC the node's certificate, key and CA from files, and picks up rewritten files without a
 * restart: it implements grpc-js's (experimental) CertificateProvider, which the credentials in
 * tls-credentials.ts subscribe to; grpc-js swaps the server's TLS context and builds new client
 * contexts on each update. Connections already open keep the certificate they were made with.
 *
 * grpc-js ships FileWatcherCertificateProvider for this, and it was tried first. It is not used
 * because it forwards whatever it read: during a rotation it can pair the new certificate with the
 * old key (two files cannot be replaced at once), and a file missing for a moment becomes a null
 * update. Either makes a server drop every incoming connection until the next poll. This provider
 * validates a candidate first (the key matches the certificate, the certificate carries a Bora
 * identity, the CA parses) and otherwise keeps serving the last good set, and it notifies only when
 * the files actually changed.
 */
import type { experimental } from '@grpc/grpc-js';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '../errors';
import type { Identity } from './identity';
import { certificateIdentity } from './pki';
import type { CertFiles } from './pki-files';

type CertificateProvider = experimental.CertificateProvider;
type CaListener = experimental.CaCertificateUpdateListener;
type IdentityListener = experimental.IdentityCertificateUpdateListener;

export const DEFAULT_REFRESH_INTERVAL_MS = 5_000;

interface LoadedSet {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly identity: Identity;
}

export interface CertificateReloaderOptions {
  /** How often the files are read for changes. */
  readonly refreshIntervalMs?: number;
  /** Told about a rejected candidate (the previous set stays in force). */
  readonly log?: (message: string) => void;
  /** Told after a new set took effect. */
  readonly onReload?: (identity: Identity) => void;
}

/** Reads and checks a set; throws InvalidArgumentError saying what is wrong. */
function loadSet(files: CertFiles): LoadedSet {
  const ca = readFileSync(files.ca);
  const cert = readFileSync(files.cert);
  const key = readFileSync(files.key);
  let parsed: X509Certificate;
  try {
    new X509Certificate(ca);
    parsed = new X509Certificate(cert);
  } catch (err) {
    throw new InvalidArgumentError(`${files.cert} or ${files.ca}: not a PEM certificate (${(err as Error).message})`, { cause: err });
  }
  let matches: boolean;
  try {
    matches = parsed.checkPrivateKey(createPrivateKey(key));
  } catch (err) {
    throw new InvalidArgumentError(`${files.key}: not a private key (${(err as Error).message})`, { cause: err });
  }
  if (!matches) throw new InvalidArgumentError(`${files.key} is not the key of ${files.cert}`);
  return { ca, cert, key, identity: certificateIdentity(parsed) };
}

export class CertificateReloader implements CertificateProvider {
  private current: LoadedSet;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private timer: NodeJS.Timeout | undefined;
  private readonly refreshIntervalMs: number;

  /** Loads the files now and throws if they are unusable: a node must not start without them. */
  constructor(
    readonly files: CertFiles,
    private readonly options: CertificateReloaderOptions = {},
  ) {
    this.refreshIntervalMs = options.refreshIntervalMs ?? DEFAULT_REFRESH_INTERVAL_MS;
    if (!(Number.isFinite(this.refreshIntervalMs) && this.refreshIntervalMs >= 10)) {
      throw new InvalidArgumentError(`refreshIntervalMs must be >= 10, got ${this.refreshIntervalMs}`);
    }
    this.current = loadSet(files);
  }

  /** The identity in the certificate now in force. */
  identity(): Identity {
    return this.current.identity;
  }

  /** Certificate, key and CA now in force (for clients other than grpc-js, e.g. etcd3). */
  pem(): { ca: Buffer; cert: Buffer; key: Buffer } {
    const { ca, cert, key } = this.current;
    return { ca, cert, key };
  }

  /**
   * Reads the files once; returns true when a new, valid set took effect. A set that fails the
   * checks is logged and ignored, so a half-done rotation keeps the old certificate in use.
   */
  refresh(): boolean {
    let next: LoadedSet;
    try {
      next = loadSet(this.files);
    } catch (err) {
      this.options.log?.(`certificate reload skipped, keeping ${this.current.identity.role}/${this.current.identity.id}: ${(err as Error).message}`);
      return false;
    }
    const caChanged = !next.ca.equals(this.current.ca);
    const identityChanged = !next.cert.equals(this.current.cert) || !next.key.equals(this.current.key);
    if (!caChanged && !identityChanged) return false;
    this.current = next;
    if (identityChanged) for (const listener of this.identityListeners) listener({ certificate: next.cert, privateKey: next.key });
    if (caChanged) for (const listener of this.caListeners) listener({ caCertificate: next.ca });
    this.options.onReload?.(next.identity);
    return true;
  }

  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    this.startOrStop();
    // grpc-js registers its own watcher only after adding this listener, so answer on the next tick.
    process.nextTick(() => {
      if (this.caListeners.has(listener)) listener({ caCertificate: this.current.ca });
    });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
    this.startOrStop();
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    this.startOrStop();
    process.nextTick(() => {
      if (this.identityListeners.has(listener)) listener({ certificate: this.current.cert, privateKey: this.current.key });
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
    this.startOrStop();
  }

  /**
   * Polls only while someone listens; the timer never keeps the process alive. Polling resumes
   * with a read, so a channel created after a quiet spell does not start on stale files.
   */
  private startOrStop(): void {
    const listening = this.caListeners.size + this.identityListeners.size > 0;
    if (listening && this.timer === undefined) {
      this.refresh();
      this.timer = setInterval(() => this.refresh(), this.refreshIntervalMs);
      this.timer.unref();
    } else if (!listening && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}
