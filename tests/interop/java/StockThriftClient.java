// thrift-compiler's Java client (from rpcboot's emitted rich IDL, on Debian's libthrift-java)
// calls an rpcboot server: compact and binary, plain and multiplexed, values, an optional
// result, and the declared RpcError.
//   java StockThriftClient THRIFT_PORT
// Prints "OK: <n> checks" and exits 0, or prints "FAIL: <what>" and exits 1.
import org.apache.thrift.protocol.TBinaryProtocol;
import org.apache.thrift.protocol.TCompactProtocol;
import org.apache.thrift.protocol.TMultiplexedProtocol;
import org.apache.thrift.protocol.TProtocol;
import org.apache.thrift.transport.TSocket;
import org.apache.thrift.transport.TTransport;
import org.apache.thrift.transport.layered.TFramedTransport;
import rich.AdminService;
import rich.Color;
import rich.Point;
import rich.RichService;
import rich.RpcError;

public class StockThriftClient {
  public static void main(String[] args) throws Exception {
    int port = Integer.parseInt(args[0]);
    for (String protocolName : new String[] {"compact", "binary"}) {
      for (boolean multiplexed : new boolean[] {false, true}) {
        String what = protocolName + (multiplexed ? " multiplexed" : " plain");
        TTransport transport = new TFramedTransport(new TSocket("127.0.0.1", port, 5000));
        TProtocol protocol = protocolName.equals("compact") ? new TCompactProtocol(transport)
                                                            : new TBinaryProtocol(transport);
        RichService.Client rich = new RichService.Client(
            multiplexed ? new TMultiplexedProtocol(protocol, "rich.RichService") : protocol);
        transport.open();
        Checks.check(rich.Mix(Color.kRed, Color.kGreen) == Color.kBlue, what + ": Mix");
        java.util.List<Point> path = rich.Path(
            java.util.Arrays.asList(new Point(1, 2), new Point(3, 4)), true);
        Checks.check(path.size() == 2 && path.get(0).getX() == 3, what + ": Path");
        Checks.check("key 8".equals(rich.Lookup(8).getValue()), what + ": Lookup(8)");
        Checks.check(!rich.Lookup(-1).isSetValue(), what + ": Lookup(-1) returns nothing");
        try {
          rich.Notify(-4, "x", Color.kRed);
          Checks.check(false, what + ": Notify(-4) must throw");
        } catch (RpcError e) {
          Checks.check(e.getCode() == 9 && e.getMessage().equals("negative id -4"),
              what + ": RpcError " + e.getCode() + " " + e.getMessage());
        }
        if (multiplexed) {
          AdminService.Client admin =
              new AdminService.Client(new TMultiplexedProtocol(protocol, "rich.AdminService"));
          Checks.check(admin.Version().equals("1.2.3"), what + ": AdminService on the same connection");
        }
        transport.close();
      }
    }
    System.out.println("OK: " + Checks.passed + " checks");
  }
}
