/** Sets the calling thread's nice value (0..19; 0 leaves it; nothing off Linux). */
export function lowerThreadPriority(nice: number): void;
