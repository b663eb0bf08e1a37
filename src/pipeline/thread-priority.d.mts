/** Sets the calling thread's nice value (0..19; 0 leaves it); returns the value applied. */
export function lowerThreadPriority(nice: number): number;
