// The stock Java clients' checks: a failed one prints "FAIL: <what>" and exits 1.
final class Checks {
  static int passed = 0;

  private Checks() {}

  static void check(boolean condition, String what) {
    if (!condition) {
      System.out.println("FAIL: " + what);
      System.exit(1);
    }
    passed++;
  }
}
