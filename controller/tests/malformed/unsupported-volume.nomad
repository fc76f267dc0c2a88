job "db" {
  group "db" {
    volume "data" {
      type      = "host"
      source    = "pgdata"
      read_only = false
    }
    task "db" {
      driver = "docker"
      config { image = "postgres:16" }
    }
  }
}
