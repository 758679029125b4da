/** Every scenario of ../shared/docs/FAULTS.md, in order, then Bora's own (E1), then the security ones (S11, S12). */
import type { Scenario, ScenarioId } from '../scenario';
import { E1 } from './expert-faults';
import { S3, S4, S5, S6, S7 } from './network-faults';
import { S1, S2, S9 } from './process-faults';
import { S12 } from './overload';
import { S11 } from './rogue-node';
import { S0, S8, S10 } from './soak';

export const SCENARIOS: readonly Scenario[] = [S0, S1, S2, S3, S4, S5, S6, S7, S8, S9, S10, E1, S11, S12];

export function scenarioById(id: ScenarioId): Scenario {
  const found = SCENARIOS.find((s) => s.id === id);
  if (found === undefined) throw new Error(`no scenario ${id}`);
  return found;
}
