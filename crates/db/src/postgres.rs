pub async fn connect(_spec: &crate::ConnectSpec) -> Result<Box<dyn crate::AdminSession>, crate::DbError> { todo!() }
