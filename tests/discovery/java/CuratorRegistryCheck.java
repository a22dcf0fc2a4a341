// Apache Curator's ServiceDiscovery, with Spring Cloud Zookeeper's payload class, against a live
// ZooKeeper: lists what rpcboot registered, and registers an instance for rpcboot to list.
//   java CuratorRegistryCheck list CONNECT BASE NAME
//       prints one line per instance: id address port metadata
//   java CuratorRegistryCheck register CONNECT BASE NAME ID PORT
//       registers, prints "registered", and stays until its stdin closes
import java.util.Map;
import java.util.TreeMap;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.x.discovery.ServiceDiscovery;
import org.apache.curator.x.discovery.ServiceDiscoveryBuilder;
import org.apache.curator.x.discovery.ServiceInstance;
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
    if (args[0].equals("list")) {
      for (ServiceInstance<ZookeeperInstance> i : discovery.queryForInstances(args[3])) {
        System.out.println(i.getId() + " " + i.getAddress() + " " + i.getPort() + " "
            + new TreeMap<>(i.getPayload().getMetadata()));
      }
    } else {
      Map<String, String> metadata = new TreeMap<>();
      metadata.put("instance_status", "UP");
      metadata.put("rpcboot.protocols", "grpc");
      metadata.put("rpcboot.grpc.port", args[5]);
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
}
