/** What each scenario needs from the machine; each returns the reason it cannot run, or undefined. */
import type { Capabilities, CapabilityName } from '../capabilities';

/** Every scenario: root, network namespaces, an etcd binary. */
export function basicsMissing(caps: Capabilities): string | undefined {
  return missing(caps, ['root', 'netns', 'etcd']);
}

/** The first missing capability of `names`, as a reason. */
export function missing(caps: Capabilities, names: readonly CapabilityName[]): string | undefined {
  for (const name of names) {
    const c = caps[name];
    if (!c.ok) return `needs ${name}: ${c.reason}`;
  }
  return undefined;
}

/** A blackhole needs netem, or tc filters that drop into a sink link. */
export function blackholeMissing(caps: Capabilities): string | undefined {
  const basics = basicsMissing(caps);
  if (basics !== undefined) return basics;
  if (caps.netem.ok || caps.tcDrop.ok) return undefined;
  return `a blackhole needs netem or tc drop filters: ${caps.netem.ok ? '' : caps.netem.reason}; ${caps.tcDrop.ok ? '' : caps.tcDrop.reason}`;
}
