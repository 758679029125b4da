/**
 * Drops one Node warning the command line would otherwise print on every TLS call: grpc-js passes
 * the target host as the TLS server name even when it is an IP address (every `bora up` address
 * is 127.0.0.1:PORT), and Node flags that with DEP0123 since SNI carries only host names. The
 * certificate is still checked against the IP address (its IP SAN); only the SNI hint is moot.
 * Every other warning is printed as before.
 */
const IP_SERVERNAME_WARNING = 'DEP0123';

function codeOf(rest: unknown[]): unknown {
  const [typeOrOptions, code] = rest;
  if (typeof typeOrOptions === 'object' && typeOrOptions !== null) return (typeOrOptions as { code?: unknown }).code;
  return code;
}

export function quietIpServernameWarning(): void {
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: unknown, ...rest: unknown[]) => {
    if (codeOf(rest) === IP_SERVERNAME_WARNING) return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}
