//! The orders Java's collections iterate aliases in, which decide which alias a key manager
//! tries first.
//!
//! `SunX509KeyManagerImpl` copies a keystore's key entries into a `java.util.HashMap` and
//! returns the first match in that map's iteration order, not the keystore's; the JKS keystore
//! keeps its entries in a `java.util.Hashtable`, whose enumeration order is again its own. Both
//! orders follow from `String.hashCode` and the collections' documented growth rules, so they
//! are computed here exactly (for buckets holding fewer than eight entries: a larger bucket
//! would be turned into a tree, which mtlscope does not model).

/// Java's `String.hashCode`: `s[0]*31^(n-1) + … + s[n-1]` over UTF-16 code units, wrapping.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The order a `new HashMap<>()` iterates `keys` in after they were put in the given order:
/// indices into `keys`. Iteration walks the table's buckets in index order and each bucket in
/// insertion order (a resize splits buckets without reordering them).
pub fn hashmap_order(keys: &[String]) -> Vec<usize> {
    // Default capacity 16 and load factor 0.75: the table doubles when size exceeds 3/4 of it.
    let mut capacity: usize = 16;
    while keys.len() > capacity / 4 * 3 {
        capacity *= 2;
    }
    let bucket = |k: &String| {
        let h = java_string_hash(k) as u32;
        ((h ^ (h >> 16)) as usize) & (capacity - 1)
    };
    let mut order: Vec<usize> = (0..keys.len()).collect();
    // Stable: equal buckets keep insertion order.
    order.sort_by_key(|&i| bucket(&keys[i]));
    order
}

/// The order a `new Hashtable<>()` enumerates `keys` in (`keys()`, as `KeyStore.aliases()`
/// returns them for JKS) after they were put in the given order: indices into `keys`.
pub fn hashtable_order(keys: &[String]) -> Vec<usize> {
    let index = |i: usize, cap: usize| ((java_string_hash(&keys[i]) & 0x7FFF_FFFF) as usize) % cap;
    // Default capacity 11, load factor 0.75; each bucket's list is kept head first.
    let mut table: Vec<Vec<usize>> = vec![Vec::new(); 11];
    let mut threshold = 8;
    for (count, i) in (0..keys.len()).enumerate() {
        if count >= threshold {
            // rehash(): capacity*2+1, old buckets walked from the last, each list from its
            // head, every entry pushed onto the head of its new bucket.
            let cap = table.len() * 2 + 1;
            let mut new: Vec<Vec<usize>> = vec![Vec::new(); cap];
            for b in table.iter().rev() {
                for &e in b {
                    new[index(e, cap)].insert(0, e);
                }
            }
            table = new;
            threshold = cap * 3 / 4;
        }
        let cap = table.len();
        table[index(i, cap)].insert(0, i);
    }
    // Enumeration walks buckets from the last to the first, each list from its head.
    table.iter().rev().flatten().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn string_hash_matches_java() {
        // Values from Java: "".hashCode() == 0, "a" == 97, "hello" == 99162322,
        // "polygenelubricants" == Integer.MIN_VALUE.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99162322);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn hashmap_walks_buckets_in_index_order() {
        // "b" (98) lands in bucket 2, "a" (97) in bucket 1: iteration gives a before b.
        assert_eq!(hashmap_order(&keys(&["b", "a"])), vec![1, 0]);
        // "a" and "q" (113 = 97 + 16) share bucket 1: insertion order kept.
        assert_eq!(hashmap_order(&keys(&["q", "a"])), vec![0, 1]);
    }

    #[test]
    fn hashtable_enumerates_from_the_last_bucket() {
        // 97 % 11 = 9, 98 % 11 = 10: bucket 10 first.
        assert_eq!(hashtable_order(&keys(&["a", "b"])), vec![1, 0]);
        // 97 and 108 ("l") share bucket 9: the later insert is the head.
        assert_eq!(hashtable_order(&keys(&["a", "l"])), vec![1, 0]);
    }
}
