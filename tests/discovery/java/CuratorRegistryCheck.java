// Apache Curator's ServiceDiscovery, with Spring Cloud Zookeeper's payload class, against a live
// ZooKeeper: lists what rpcboot registered, and registers an instance for rpcboot to list.
//   java CuratorRegistryCheck list CONNECT BASE NAME
//       prints one line per instance: id address port metadata
//   java CuratorRegistryCheck register CONNECT BASE NAME ID PORT [rpcboot|plain]
//       registers (rpcboot: with rpcboot's gRPC keys, the default; plain: Spring's status only),
//       prints "registered", and stays until its stdin closes
//   java CuratorRegistryCheck watch CONNECT BASE NAME OUT_FILE
//       follows NAME with a ServiceCache and a ServiceProvider and appends a line to OUT_FILE
//       each time what they hold changes: "cache=<ids> provider=<ids> pick=<id>" (ids sorted,
//       comma-separated); runs until killed
import java.io.FileWriter;
import java.io.PrintWriter;
import java.util.Collection;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceCache;
import org.apache.curator.x.discovery.ServiceInstance;
import org.apache.curator.x.discovery.ServiceProvider;
import org.apache.curator.x.discovery.UriSpec;
import org.apache.curator.x.discovery.details.JsonInstanceSerializer;
import org.springframework.cloud.zookeeper.discovery.ZookeeperInstance;

public class CuratorRegistryCheck {
  public static void main(String[] args) throws Exception {
    CuratorFramework client = CuratorFrameworkFactory.newClient(args[1], new ExponentialBackoffRetry(100, 5));
    client.start();
    ServiceDiscovery<ZookeeperInstance> discovery = ServiceDiscoveryBuilder.builder(ZookeeperInstance.class)
        .client(client).basePath(args[2])
        .serializer(new JsonInstanceSerializer<>(ZookeeperInstance.class)).build();
    discovery.start();
    if (args[0].equals("watch")) {
      ServiceCache<ZookeeperInstance> cache = discovery.serviceCacheBuilder().name(args[3]).build();
      ServiceProvider<ZookeeperInstance> provider =
          discovery.serviceProviderBuilder().serviceName(args[3]).build();
      cache.start();
      provider.start();
      String last = "";
      try (PrintWriter out = new PrintWriter(new FileWriter(args[4], true), true)) {
        while (true) {
          ServiceInstance<ZookeeperInstance> pick = provider.getInstance();
          String line = "cache=" + ids(cache.getInstances()) + " provider="
              + ids(provider.getAllInstances()) + " pick=" + (pick == null ? "none" : pick.getId());
          if (!line.equals(last)) {
            out.println(line);
            last = line;
          }
          Thread.sleep(50);
        }
      }
    }
    if (args[0].equals("list")) {
      for (ServiceInstance<ZookeeperInstance> i : discovery.queryForInstances(args[3])) {
        System.out.println(i.getId() + " " + i.getAddress() + " " + i.getPort() + " "
            + new TreeMap<>(i.getPayload().getMetadata()));
      }
    } else {
      Map<String, String> metadata = new TreeMap<>();
      metadata.put("instance_status", "UP");
      if (args.length < 7 || !args[6].equals("plain")) {
        metadata.put("rpcboot.protocols", "grpc");
        metadata.put("rpcboot.grpc.port", args[5]);
      }
      ServiceInstance<ZookeeperInstance> i = ServiceInstance.<ZookeeperInstance>builder()
          .name(args[3]).id(args[4]).address("127.0.0.1").port(Integer.parseInt(args[5]))
          .payload(new ZookeeperInstance(args[3] + "-" + args[4], args[3], metadata))
          .uriSpec(new UriSpec("{scheme}://{address}:{port}")).build();
      discovery.registerService(i);
      System.out.println("registered");
      System.out.flush();
      while (System.in.read() >= 0) {
      }
      discovery.unregisterService(i);
    }
    discovery.close();
    client.close();
  }

  static String ids(Collection<ServiceInstance<ZookeeperInstance>> instances) {
    TreeSet<String> ids = new TreeSet<>();
    for (ServiceInstance<ZookeeperInstance> i : instances) ids.add(i.getId());
    return String.join(",", ids);
  }
}
