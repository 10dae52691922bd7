/**
 * A software mapping (what the kernel keeps as a vm_area_struct) and how a view finds it.
 */
import type { Vma } from './backing';
import type { File } from './file';

/** What munmap must undo. */
export interface Mapping {
  /** the framework that made it: another one's munmap must refuse it */
  readonly owner: object;
  /** the exporter's vm_ops->close; dropped at munmap */
  close: Vma['close'] | undefined;
  /** vm_file: the reference the mapping holds; dropped at munmap */
  file: File | null;
  /** the view while mapped: strongly until the next turn, then through a WeakRef (a program
   *  that forgets a buffer must not leak it here); null once unmapped or collected */
  held: Uint8Array | WeakRef<Uint8Array> | null;
}

/** Its constructor returns the object it is given, so a subclass's private field lands on that object. */
class Identity {
  constructor(target: object) {
    return target;
  }
}

/**
 * A view's mapping, as a private field stamped on the view when mmap made it: user code can
 * neither read nor forge it. A WeakMap from views did the same at the cost of an ephemeron per
 * mapping (V8's write-barrier slow path, and scavenges clearing the dead entries). A view is
 * stamped once, for good; after munmap its mapping holds nothing (no file, no close).
 */
class MappedView extends Identity {
  #mapping: Mapping;

  private constructor(view: Uint8Array, mapping: Mapping) {
    super(view);
    this.#mapping = mapping;
  }

  /** false: the object already belongs to a mapping, or cannot take a field (an exporter's bug) */
  static stamp(view: Uint8Array, mapping: Mapping): boolean {
    if (#mapping in view) return false;
    try {
      new MappedView(view, mapping);
      return true;
    } catch {
      return false;
    }
  }

  static of(view: unknown): Mapping | undefined {
    return typeof view === 'object' && view !== null && #mapping in view ? (view as MappedView).#mapping : undefined;
  }
}

export const stampView = MappedView.stamp;
export const mappingOf = MappedView.of;
