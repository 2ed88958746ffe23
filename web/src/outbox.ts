// The outbox: payments the page has given a transaction id but has no
// final answer for yet, kept in IndexedDB so that a reload, a closed tab
// or a gateway that is down loses none of them. An entry is written before
// its first send and removed only when the gateway gave a final answer;
// every resend uses the entry's own id, so the gateway pays it at most once.

export type Pending = {
  transactionId: string;
  clientId: string;
  bank: string;
  account: string;
  amount: bigint;
  currency: string;
  description: string;
  created: number; // ms since the epoch, for the order of sending
  attempts: number;
  lastError: string;
};

const dbName = "remit-wallet";
const storeName = "outbox";
let opened: Promise<IDBDatabase> | undefined;

function open(): Promise<IDBDatabase> {
  opened ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(dbName, 1);
    req.onupgradeneeded = () => {
      req.result.createObjectStore(storeName, { keyPath: "transactionId" });
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => {
      opened = undefined;
      reject(req.error);
    };
  });
  return opened;
}

async function run<T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await open();
  return new Promise((resolve, reject) => {
    // strict: complete fires once the write is flushed to disk, not just
    // handed to the OS (Chromium's default is relaxed), so a queued
    // payment survives a power cut as well as a reload.
    const tx = db.transaction(storeName, mode, { durability: mode === "readwrite" ? "strict" : "default" });
    const req = f(tx.objectStore(storeName));
    // Resolve when the transaction is durable, not when the request is done.
    tx.oncomplete = () => resolve(req.result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

export async function save(p: Pending): Promise<void> {
  await run("readwrite", (s) => s.put(p));
}

export async function remove(transactionId: string): Promise<void> {
  await run("readwrite", (s) => s.delete(transactionId));
}

// list returns clientId's pending payments, oldest first.
export async function list(clientId: string): Promise<Pending[]> {
  const all = (await run("readonly", (s) => s.getAll())) as Pending[];
  return all.filter((p) => p.clientId === clientId).sort((a, b) => a.created - b.created);
}

// update writes p only if it is still queued, in one transaction, and says
// whether it was: another tab of the same user may have had its final
// answer and removed it meanwhile, and writing it back would queue it again.
export async function update(p: Pending): Promise<boolean> {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(storeName, "readwrite", { durability: "strict" });
    const s = tx.objectStore(storeName);
    let found = false;
    const get = s.getKey(p.transactionId);
    get.onsuccess = () => {
      found = get.result !== undefined;
      if (found) s.put(p);
    };
    tx.oncomplete = () => resolve(found);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}
