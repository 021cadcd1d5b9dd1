import { useLayoutEffect, useRef } from 'react';

/** A ref that always holds the latest value: callbacks passed to hooks need not be memoized. */
export function useLatest<T>(value: T): { readonly current: T } {
  const ref = useRef(value);
  useLayoutEffect(() => {
    ref.current = value;
  });
  return ref;
}
