/**
 * etcd's own access control for a Bora cluster: users (one per certificate CN, see identity.ts),
 * roles with key and key-prefix permissions, then `auth enable`.
 *
 *   worker-<id>       role bora-worker-<id>: read the whole Bora prefix and the election; write only its member key
 *                     (exactly members/<id>: a prefix would also cover members/<id>0) and its ready
 *                     marks (the prefix ready/<id>/, see etcd-keys.ts) and its model version failure
 *                     reports (the prefix models/failures/<id>/)
 *   coordinator-<id>  role bora-coordinator: read the whole Bora prefix; write the plan, its epoch,
 *                     the election keys (which etcd3 keeps outside the prefix, see etcd-keys.ts)
 *                     and the coordinator address and health keys; read and write the model registry
 *                     (models/: its admin API registers and removes versions)
 *   admin-<id>        etcd's built-in root role: manages users and roles, reads and writes all
 *   root              required by etcd before auth can be enabled; created without a password, so
 *                     only a certificate with CN "root" (which Bora never issues) could act as it
 *
 * Users are created without passwords: a client proves who it is with its certificate alone.
 * Applying is idempotent (existing users, roles and grants are kept), so it can run on every
 * `bora up`, and again to add a worker.
 */
import { type Etcd3, EtcdRoleNotFoundError, EtcdUserNotFoundError, Range } from 'etcd3';
import type { EtcdKeys } from '../cluster/etcd-keys';
import { workerId } from '../ids';
import { identity, identityCommonName } from './identity';

export type EtcdPermission = 'Read' | 'Write' | 'Readwrite';

export interface EtcdGrant {
  readonly permission: EtcdPermission;
  /** A single key, or every key starting with it when `prefix` is true. */
  readonly key: string;
  readonly prefix: boolean;
}

export interface EtcdRoleSpec {
  readonly name: string;
  readonly grants: readonly EtcdGrant[];
}

export interface EtcdUserSpec {
  readonly name: string;
  readonly roles: readonly string[];
}

export interface EtcdRbacPlan {
  readonly roles: readonly EtcdRoleSpec[];
  readonly users: readonly EtcdUserSpec[];
}

export interface EtcdPrincipals {
  readonly workers?: readonly string[];
  readonly coordinators?: readonly string[];
  readonly admins?: readonly string[];
}

export const ETCD_ROOT_USER = 'root';
export const ETCD_ROOT_ROLE = 'root';
export const COORDINATOR_ETCD_ROLE = 'bora-coordinator';

export function workerEtcdRole(id: string): string {
  return `bora-worker-${id}`;
}

function readAll(keys: EtcdKeys): EtcdGrant {
  return { permission: 'Read', key: `${keys.prefix}/`, prefix: true };
}

/** What a worker may do: read everything under the prefix, write only its own records. */
export function workerRole(keys: EtcdKeys, id: string): EtcdRoleSpec {
  const wid = workerId(identity('worker', id).id);
  return {
    name: workerEtcdRole(id),
    grants: [
      readAll(keys),
      { permission: 'Read', key: keys.electionKeysPrefix(), prefix: true }, // to find the leader
      { permission: 'Readwrite', key: keys.member(wid), prefix: false },
      { permission: 'Readwrite', key: keys.workerReadyPrefix(wid), prefix: true },
      { permission: 'Readwrite', key: keys.workerModelFailuresPrefix(wid), prefix: true },
    ],
  };
}

/** What a coordinator may do: read everything, write the plan and the leadership keys. */
export function coordinatorRole(keys: EtcdKeys): EtcdRoleSpec {
  return {
    name: COORDINATOR_ETCD_ROLE,
    grants: [
      readAll(keys),
      { permission: 'Readwrite', key: keys.plan(), prefix: false },
      { permission: 'Readwrite', key: keys.planEpoch(), prefix: false },
      { permission: 'Readwrite', key: keys.electionKeysPrefix(), prefix: true },
      { permission: 'Readwrite', key: keys.coordinator(), prefix: false },
      { permission: 'Readwrite', key: keys.coordinatorHealthPrefix(), prefix: true },
      { permission: 'Readwrite', key: keys.modelVersionsPrefix(), prefix: true },
      { permission: 'Readwrite', key: keys.modelFailuresPrefix(), prefix: true },
    ],
  };
}

/** The users and roles for `principals` (ids, validated). Pure: see applyEtcdRbac. */
export function etcdRbacPlan(keys: EtcdKeys, principals: EtcdPrincipals): EtcdRbacPlan {
  const roles: EtcdRoleSpec[] = [coordinatorRole(keys)];
  const users: EtcdUserSpec[] = [{ name: ETCD_ROOT_USER, roles: [ETCD_ROOT_ROLE] }];
  for (const id of principals.coordinators ?? []) users.push({ name: identityCommonName(identity('coordinator', id)), roles: [COORDINATOR_ETCD_ROLE] });
  for (const id of principals.workers ?? []) {
    const role = workerRole(keys, id);
    roles.push(role);
    users.push({ name: identityCommonName(identity('worker', id)), roles: [role.name] });
  }
  for (const id of principals.admins ?? []) users.push({ name: identityCommonName(identity('admin', id)), roles: [ETCD_ROOT_ROLE] });
  return { roles, users };
}

async function exists(lookup: Promise<unknown>, notFound: new (...args: never[]) => Error): Promise<boolean> {
  try {
    await lookup;
    return true;
  } catch (err) {
    if (err instanceof notFound) return false;
    throw err;
  }
}

/**
 * Creates what `plan` names and is missing, then enables auth when `enable` is set. Run it over a
 * connection that may administer etcd: any TLS client before auth is enabled, an admin
 * certificate (root role) after.
 */
export async function applyEtcdRbac(client: Etcd3, plan: EtcdRbacPlan, options: { enable: boolean }): Promise<void> {
  const existingRoles = new Set((await client.getRoles()).map((r) => r.name));
  for (const spec of plan.roles) {
    if (!existingRoles.has(spec.name)) await client.role(spec.name).create();
    const role = client.role(spec.name);
    const have = await role.permissions();
    for (const grant of spec.grants) {
      const range = grant.prefix ? Range.prefix(grant.key) : new Range(grant.key);
      const already = have.some((p) => p.permission === grant.permission && p.range.start.equals(range.start) && p.range.end.equals(range.end));
      if (!already) await role.grant({ permission: grant.permission, range });
    }
  }
  for (const spec of plan.users) {
    if (!(await exists(client.user(spec.name).roles(), EtcdUserNotFoundError))) {
      await client.auth.userAdd({ name: spec.name, options: { no_password: true } });
    }
    const has = new Set((await client.user(spec.name).roles()).map((r) => r.name));
    for (const role of spec.roles) {
      if (role !== ETCD_ROOT_ROLE && !(await exists(client.role(role).permissions(), EtcdRoleNotFoundError))) {
        throw new Error(`etcd role ${role} does not exist`); // a bug in the plan, not an input error
      }
      if (!has.has(role)) await client.user(spec.name).addRole(role);
    }
  }
  if (options.enable) await client.auth.authEnable();
}
