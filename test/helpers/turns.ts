/**
 * Counting turns of the event loop: a callback that schedules itself for the next turn
 * (`setImmediate`) runs once in each turn that the code under test leaves free. A test that holds
 * the loop for the whole of a call counts none during it.
 */
export function turnCounter(): { turns: () => number; stop: () => void } {
  let turns = 0;
  let spinning = true;
  const spin = () => {
    turns += 1;
    if (spinning) setImmediate(spin);
  };
  setImmediate(spin);
  return { turns: () => turns, stop: () => (spinning = false) };
}
